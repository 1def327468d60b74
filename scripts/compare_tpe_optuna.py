"""Chronos's TPE sampler beside Optuna's TPESampler and random search on the same test functions.

    python3 scripts/compare_tpe_optuna.py [--trials 60] [--seeds 20] [--startup 10] [--checkpoints 20,40,60]

Needs a release build (`swift build -c release --product chronos`) and `pip install optuna`. Runs
`chronos bench tpe --json` twice, with --independent (one estimator per parameter) and with --multivariate
(one joint estimator over all parameters), each with random search over seeds 0..N-1; then Optuna's
TPESampler (n_startup_trials = --startup, seed = the run's seed, its other settings at their defaults) twice,
with multivariate=False and multivariate=True (what Optuna 5 defaults to for one objective), on the same
functions: Branin, Hartmann-6, and (x-1)^2 + (y+2)^2 + an offset per category {a: 1, b: 0, c: 0.5, d: 2}
+ 0.1 N(0, 1). Prints a Markdown table of the best value after each checkpoint's number of trials, mean
and standard deviation over the seeds, and writes the same numbers as JSON with --json-out.
"""
import argparse
import json
import math
import random
import statistics
import subprocess
import sys
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
MINIMA = {"branin": 0.397887, "hartmann6": -3.32237, "noisy-quadratic": 0.0}


def branin(trial, _noise):
    x1, x2 = trial.suggest_float("x1", -5, 10), trial.suggest_float("x2", 0, 15)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


HARTMANN_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HARTMANN_P = [
    [1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381],
]


def hartmann6(trial, _noise):
    x = [trial.suggest_float(f"x{j}", 0, 1) for j in range(6)]
    total = 0.0
    for alpha, a, p in zip([1.0, 1.2, 3.0, 3.2], HARTMANN_A, HARTMANN_P):
        total += alpha * math.exp(-sum(a[j] * (x[j] - p[j] * 1e-4) ** 2 for j in range(6)))
    return -total


def noisy_quadratic(trial, noise):
    x, y = trial.suggest_float("x", -5, 5), trial.suggest_float("y", -5, 5)
    c = trial.suggest_categorical("c", ["a", "b", "c", "d"])
    return (x - 1) ** 2 + (y + 2) ** 2 + {"a": 1.0, "b": 0.0, "c": 0.5, "d": 2.0}[c] + 0.1 * noise.gauss(0, 1)


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "noisy-quadratic": noisy_quadratic}


def optuna_curve(function, trials, startup, seed, multivariate):
    noise = random.Random(seed ^ 0x5EED)
    sampler = optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, multivariate=multivariate)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: function(trial, noise), n_trials=trials)
    best, curve = math.inf, []
    for trial in study.trials:
        best = min(best, trial.value)
        curve.append(best)
    return curve


def summary(curves, n):
    finals = [curve[n - 1] for curve in curves]
    return statistics.fmean(finals), statistics.pstdev(finals)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--startup", type=int, default=10)
    parser.add_argument("--checkpoints", default="20,40,60")
    parser.add_argument("--chronos", default=str(ROOT / ".build/release/chronos"))
    parser.add_argument("--json-out")
    args = parser.parse_args()
    checkpoints = [int(n) for n in args.checkpoints.split(",") if int(n) <= args.trials]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    results = {}
    for mode, label in [("independent", "tpe"), ("multivariate", "tpe-mv")]:
        print(f"running {args.chronos} bench tpe --{mode}", file=sys.stderr)
        output = subprocess.run(
            [args.chronos, "bench", "tpe", "--json", f"--{mode}", "--trials", str(args.trials), "--seeds", str(args.seeds),
             "--startup", str(args.startup)], check=True, capture_output=True, text=True).stdout
        for name, runs in json.loads(output)["results"].items():
            results.setdefault(name, {})[label] = runs["tpe"]
            results[name]["random"] = runs["random"]
    for name, function in FUNCTIONS.items():
        print(f"running Optuna on {name}", file=sys.stderr)
        for label, multivariate in [("optuna-tpe", False), ("optuna-tpe-mv", True)]:
            results[name][label] = [
                optuna_curve(function, args.trials, args.startup, s, multivariate) for s in range(args.seeds)
            ]

    print(f"Best value after N trials, mean ± sd over {args.seeds} seeds; TPE samplers with {args.startup} random "
          "startup trials (lower is better).\n")
    columns = {
        "tpe": "Chronos TPE, independent", "optuna-tpe": "Optuna TPE, independent",
        "tpe-mv": "Chronos TPE, multivariate", "optuna-tpe-mv": "Optuna TPE, multivariate", "random": "random",
    }
    print("| function (minimum) | N | " + " | ".join(columns.values()) + " |")
    print("| --- | ---: |" + " ---: |" * len(columns))
    table = {}
    for name in FUNCTIONS:
        for n in checkpoints:
            cells = {sampler: summary(results[name][sampler], n) for sampler in columns}
            table.setdefault(name, {})[n] = cells
            row = " | ".join(f"{m:.4f} ± {s:.4f}" for m, s in cells.values())
            print(f"| {name} ({MINIMA[name]}) | {n} | {row} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"optuna": optuna.__version__, "table": table}, indent=1))


if __name__ == "__main__":
    main()
