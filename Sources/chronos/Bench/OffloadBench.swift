import ChronosEngine
import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// `chronos bench offload`: the four storage baselines (`resident`, `mmap`, `lru`, `chronos`)
/// on the same model, prompts, budget and disk model, in one run, with greedy decoding; each
/// beside the bound max(compute, missed bytes / disk bandwidth).
struct OffloadBench {
    /// One measured configuration.
    struct Run {
        var metrics: OffloadRunMetrics
        /// Tokens/s the bound allows (nil when the disk bandwidth is unknown and bytes were missed).
        var boundTokensPerSecond: Double?
        /// Why the configuration could not run (a budget below one expert), if so.
        var note: String?
        /// The settings it ran with.
        var settings: OffloadSettings?
        /// The greedy ids it generated, per prompt.
        var ids: [[Int]] = []
        /// Each step's distinct experts, over every prompt in turn, and whether it was a decode step.
        var routing: [[ExpertKey]] = []
        var decodeSteps: [Bool] = []
        /// The decode hit rate of Belady's MIN on the resident run's routing within this run's
        /// budget: the best any eviction policy reaches without prefetching.
        var oracleHitRate: Double?
        /// Share of generated positions whose token equals the resident run's.
        var agreement: Double?
        /// Mean cross-entropy (nats/token) of the held-out references (or of the resident run's
        /// continuations) under this run's settings, teacher-forced: measured for lossy policies
        /// and for `resident` itself.
        var crossEntropy: Double?
    }

    let directory: URL
    let prompts: [[Int]]
    let tokens: Int
    let options: OffloadOptions
    let progress: (String) -> Void
    /// Held-out continuations of the prompts, one each, on which lossy runs' cross-entropy is
    /// measured (nil: resident's greedy continuations).
    var references: [[Int]]?

    /// Runs every baseline at `budget` (`lru` and `chronos` with each of `policies`), prompt by
    /// prompt in turn, so that a drift in the shared machine's speed hits them alike; `resident`
    /// is measured too unless given.
    func run(budget: ExpertBudget, policies: [MissPolicy], resident: Run? = nil) throws -> [Run] {
        var configurations: [(ExpertResidencyMode, ExpertBudget, MissPolicy?)] = resident == nil ? [(.resident, .fraction(1), nil)] : []
        configurations.append((.mmap, budget, nil))
        for mode in [ExpertResidencyMode.lru, .chronos] {
            for policy in policies { configurations.append((mode, budget, policy)) }
        }
        var runs = try measure(configurations)
        if let resident { runs.insert(resident, at: 0) }
        let reference = runs[0].metrics.tokensPerSecond
        let compute = reference > 0 ? 1 / reference : 0
        runs = runs.map { run in
            var run = run
            if run.note == nil { run.boundTokensPerSecond = bound(run.metrics, compute: compute) }
            return run
        }
        try scoreQuality(&runs)
        try scoreOracle(&runs)
        return runs
    }

    /// The oracle hit rate of every run that keeps experts under a budget, from the resident
    /// run's routing (the same greedy tokens under `wait`; an approximation for lossy runs).
    func scoreOracle(_ runs: inout [Run]) throws {
        let sizes = Dictionary(uniqueKeysWithValues: try ExpertCache.open(modelDirectory: directory).manifest.experts.map { ($0.key, $0.length) })
        var byBudget: [Int: Double] = [:]
        for index in runs.indices where runs[index].note == nil && runs[index].metrics.mode != .resident {
            let budget = runs[index].metrics.budgetBytes
            if byBudget[budget] == nil {
                let result = BeladyOracle.simulate(steps: runs[0].routing, counted: runs[0].decodeSteps, capacity: budget,
                                                   bytes: { sizes[$0] ?? 0 })
                byBudget[budget] = result.needed > 0 ? Double(result.hits) / Double(result.needed) : nil
            }
            runs[index].oracleHitRate = byBudget[budget]
        }
    }

    /// Greedy agreement of every run with `runs[0]` (resident), and for runs whose policy may
    /// change the output (`fallback`) the cross-entropy of the held-out references (or of the
    /// resident continuations) under their settings, beside the resident model's own.
    func scoreQuality(_ runs: inout [Run]) throws {
        let reference = runs[0].ids
        for index in runs.indices where runs[index].note == nil {
            var same = 0, total = 0
            for (ours, theirs) in zip(runs[index].ids, reference) {
                total += theirs.count
                same += zip(ours, theirs).filter { $0 == $1 }.count
            }
            runs[index].agreement = total > 0 ? Double(same) / Double(total) : nil
        }
        let lossy = runs.indices.filter { runs[$0].note == nil && runs[$0].metrics.policy == .fallback }
        guard !lossy.isEmpty else { return }
        let scored = references ?? reference
        if runs[0].crossEntropy == nil, let settings = runs[0].settings {
            runs[0].crossEntropy = try crossEntropy(settings, continuations: scored)
        }
        for index in lossy {
            progress("\(runs[index].metrics.name)/fallback: scoring \(references == nil ? "the resident continuations" : "the held-out continuations")")
            runs[index].crossEntropy = try crossEntropy(runs[index].settings!, continuations: scored)
        }
    }

    /// Mean negative log-likelihood per token of `continuations` (one per prompt), teacher-forced
    /// through a fresh model under `settings`.
    func crossEntropy(_ settings: OffloadSettings, continuations: [[Int]]) throws -> Double {
        let model = try OffloadedModel(directory: directory, settings: settings)
        defer { model.close() }
        var total = 0.0, count = 0
        for (prompt, continuation) in zip(prompts, continuations) where !continuation.isEmpty {
            let result = try OffloadedGenerator(offloaded: model, tokenizer: nil).generate(
                GenerationRequest(promptIds: prompt, maxTokens: continuation.count, sampling: .greedy, ignoreEOS: true,
                                  forcedIds: continuation))
            total -= result.generation.forcedLogProbabilities.reduce(0.0) { $0 + Double($1) }
            count += result.generation.forcedLogProbabilities.count
        }
        return count > 0 ? total / Double(count) : 0
    }

    /// Measures each configuration over every prompt, interleaved prompt by prompt.
    func measure(_ configurations: [(mode: ExpertResidencyMode, budget: ExpertBudget, policy: MissPolicy?)]) throws -> [Run] {
        var models: [OffloadedModel?] = [], runs: [Run] = []
        defer { for model in models { model?.close() } }
        for (mode, budget, policy) in configurations {
            let settings = try options.settings(mode: mode, budget: budget, policy: policy)
            var metrics = OffloadRunMetrics(name: mode.rawValue, mode: mode, policy: policy, budgetBytes: 0, totalExpertBytes: 0)
            do {
                let model = try OffloadedModel(directory: directory, settings: settings)
                metrics.budgetBytes = model.budgetBytes
                metrics.totalExpertBytes = model.totalExpertBytes
                models.append(model)
                runs.append(Run(metrics: metrics, boundTokensPerSecond: nil, note: nil, settings: settings))
            } catch let error as ExpertCacheError {
                guard case .budgetTooSmall = error else { throw error }
                progress("\(mode.rawValue)\(policy.map { "/\($0.rawValue)" } ?? "") at \(budget): skipped, \(error)")
                models.append(nil)
                runs.append(Run(metrics: metrics, boundTokensPerSecond: nil, note: "budget below one expert"))
            }
        }
        for (index, prompt) in prompts.enumerated() {
            for (position, model) in models.enumerated() {
                guard let model else { continue }
                let name = runs[position].metrics.name + (runs[position].metrics.policy.map { "/\($0.rawValue)" } ?? "")
                progress("prompt \(index + 1)/\(prompts.count) (\(prompt.count) tokens), \(name): decoding \(tokens)")
                let result = try OffloadedGenerator(offloaded: model, tokenizer: nil).generate(
                    GenerationRequest(promptIds: prompt, maxTokens: tokens, sampling: .greedy, ignoreEOS: true),
                    name: runs[position].metrics.name)
                runs[position].metrics.add(result.metrics)
                runs[position].ids.append(result.generation.ids)
                runs[position].routing += result.routing
                runs[position].decodeSteps += result.routing.indices.map { $0 > 0 }
            }
        }
        for (position, model) in models.enumerated() {
            guard let model else { continue }
            model.close()
            if let final = model.storageMetrics() {
                runs[position].metrics.decode.wastedPrefetchBytes = final.wastedPrefetchBytes - runs[position].metrics.prefill.wastedPrefetchBytes
            }
        }
        return runs
    }

    /// Tokens/s allowed by max(compute s/token, missed bytes per token / disk bandwidth).
    func bound(_ metrics: OffloadRunMetrics, compute: Double) -> Double? {
        let missed = metrics.missedBytesPerToken
        var seconds = compute
        if missed > 0 {
            if let disk = (try? options.diskModel()) ?? nil {
                seconds = max(seconds, missed / disk.bandwidth)
            } else if metrics.decode.readNanoseconds > 0, metrics.decode.bytesRead > 0 {
                let bandwidth = Double(metrics.decode.bytesRead) / (Double(metrics.decode.readNanoseconds) / 1e9)
                seconds = max(seconds, missed / bandwidth)
            } else {
                return nil
            }
        }
        return seconds > 0 ? 1 / seconds : nil
    }

    /// The built-in prompts: held-out-looking snippets tokenised with the model's tokenizer, or
    /// seeded random ids when it has none.
    static func defaultPrompts(directory: URL, vocab: Int) throws -> [[Int]] {
        let snippets = [
            "The committee met again on Thursday to review the survey of the northern coastline, where erosion had",
            "def merge_intervals(intervals):\n    intervals.sort(key=lambda x: x[0])\n    merged = []\n    for",
            "She folded the letter twice, set it beside the candle, and for a long while said nothing to her sister about",
            "In a mixture-of-experts layer, each token is routed to a small number of feed-forward networks chosen by",
        ]
        let url = directory.appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: url.path) {
            let tokenizer = try Tokenizer(contentsOf: url)
            let encoded = snippets.map { tokenizer.encode($0).filter { $0 < vocab } }.filter { !$0.isEmpty }
            if !encoded.isEmpty { return encoded }
        }
        var generator = SplitMix64(seed: 2024)
        return (0..<snippets.count).map { _ in (0..<24).map { _ in Int(generator.next() % UInt64(vocab)) } }
    }

    /// Prompts from `file`, one per line (blank lines skipped).
    static func prompts(file: URL, directory: URL, vocab: Int) throws -> [[Int]] {
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let url = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            return try lines.map { try parseIds($0) }
        }
        let tokenizer = try Tokenizer(contentsOf: url)
        return lines.map { tokenizer.encode($0) }.filter { !$0.isEmpty }
    }

    /// The printed table, one row per run, with ratios to `resident`.
    static func table(_ runs: [Run]) -> String {
        let header = ["baseline", "policy", "budget", "tok/s", "×res", "bound", "TTFT ms", "stall ms/tok", "hit %", "oracle", "next L",
                      "repeat", "recall@1", "shuf", "freq", "prev", "prompt", "chance", "read/tok", "wasted", "peak", "fallbk", "faults", "agree %", "CE"]
        let reference = runs.first { $0.metrics.mode == .resident }?.metrics.tokensPerSecond ?? 0
        var rows = [header]
        for run in runs {
            let m = run.metrics
            if let note = run.note {
                rows.append([m.name, m.policy?.rawValue ?? "-", "-", note] + Array(repeating: "", count: header.count - 4))
                continue
            }
            func percent(_ x: Double?) -> String { x.map { String(format: "%.1f", $0 * 100) } ?? "-" }
            let p = m.predictions
            rows.append([
                m.name, m.policy?.rawValue ?? "-", String(format: "%.0f%%", Double(m.budgetBytes) / Double(max(1, m.totalExpertBytes)) * 100),
                String(format: "%.2f", m.tokensPerSecond), reference > 0 ? String(format: "%.2f", m.tokensPerSecond / reference) : "-",
                run.boundTokensPerSecond.map { String(format: "%.2f", $0) } ?? "-",
                String(format: "%.1f", m.timeToFirstTokenMs), String(format: "%.2f", m.stallMsPerToken), percent(m.hitRate),
                percent(run.oracleHitRate), percent(p.nextLayer.recall), percent(p.repetition.recall), percent(p.lookahead.first?.recall), percent(p.lookaheadShuffled.first?.recall),
                percent(p.lookaheadFrequency.first?.recall), percent(p.lookaheadPrevious.first?.recall),
                percent(p.prompt.recall), percent(p.promptChance.recall),
                OffloadRunMetrics.bytes(m.bytesReadPerToken), OffloadRunMetrics.bytes(Double(m.decode.wastedPrefetchBytes)),
                OffloadRunMetrics.bytes(Double(m.peakExpertBytes)), "\(m.fallbacks)", "\(m.faults)", percent(run.agreement),
                run.crossEntropy.map { String(format: "%.3f", $0) } ?? "-",
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// The JSON object of one run.
    static func json(_ run: Run, budget: ExpertBudget) -> [String: Any] {
        let m = run.metrics, p = m.predictions
        var object: [String: Any] = [
            "name": m.name, "policy": m.policy?.rawValue ?? NSNull(), "budget": budget.description, "budget_bytes": m.budgetBytes,
            "expert_bytes": m.totalExpertBytes, "tokens_per_s": m.tokensPerSecond, "ttft_ms": m.timeToFirstTokenMs,
            "stall_ms_per_token": m.stallMsPerToken, "hit_rate": m.hitRate, "oracle_hit_rate": run.oracleHitRate ?? NSNull(), "bytes_read_per_token": m.bytesReadPerToken,
            "missed_bytes_per_token": m.missedBytesPerToken, "wasted_prefetch_bytes": m.decode.wastedPrefetchBytes,
            "prefetched_bytes": m.decode.prefetchedBytes, "peak_expert_bytes": m.peakExpertBytes, "fallbacks": m.fallbacks,
            "faults": m.faults, "prompts": m.prompts, "decode_steps": m.decodeSteps,
            "next_layer_recall": p.nextLayer.recall ?? NSNull(),
            "repetition_recall": p.repetition.recall ?? NSNull(), "repetition_precision": p.repetition.precision ?? NSNull(),
            "recall_t1": p.lookahead.first?.recall ?? NSNull(), "precision_t1": p.lookahead.first?.precision ?? NSNull(),
            "recall_t1_shuffled": p.lookaheadShuffled.first?.recall ?? NSNull(),
            "recall_t1_frequency": p.lookaheadFrequency.first?.recall ?? NSNull(),
            "recall_t1_previous": p.lookaheadPrevious.first?.recall ?? NSNull(),
            "recall_by_offset": p.lookahead.map { $0.recall ?? -1 },
            "prompt_recall": p.prompt.recall ?? NSNull(), "prompt_precision": p.prompt.precision ?? NSNull(),
            "prompt_recall_chance": p.promptChance.recall ?? NSNull(),
            "bound_tokens_per_s": run.boundTokensPerSecond ?? NSNull(),
            "greedy_agreement": run.agreement ?? NSNull(), "cross_entropy": run.crossEntropy ?? NSNull(),
        ]
        if let note = run.note { object["note"] = note }
        return object
    }

    /// The CSV header of `--sweep`.
    static let csvHeader = "budget,baseline,policy,tokens_per_s,ttft_ms,stall_ms_per_token,hit_rate,oracle_hit_rate,recall_t1,recall_t1_shuffled,recall_t1_frequency,bytes_read_per_token,wasted_prefetch_bytes,peak_expert_bytes,fallbacks,faults,bound_tokens_per_s,greedy_agreement,cross_entropy,note"

    /// One CSV row of `--sweep`.
    static func csvRow(_ run: Run, budget: Double) -> String {
        let m = run.metrics, p = m.predictions
        func number(_ x: Double?) -> String { x.map { String(format: "%.6g", $0) } ?? "" }
        if let note = run.note { return "\(budget),\(m.name),\(m.policy?.rawValue ?? "-")," + String(repeating: ",", count: csvHeader.split(separator: ",").count - 4) + note }
        return [String(budget), m.name, m.policy?.rawValue ?? "-", number(m.tokensPerSecond), number(m.timeToFirstTokenMs),
                number(m.stallMsPerToken), number(m.hitRate), number(run.oracleHitRate), number(p.lookahead.first?.recall), number(p.lookaheadShuffled.first?.recall),
                number(p.lookaheadFrequency.first?.recall), number(m.bytesReadPerToken), "\(m.decode.wastedPrefetchBytes)",
                "\(m.peakExpertBytes)", "\(m.fallbacks)", "\(m.faults)", number(run.boundTokensPerSecond), number(run.agreement),
                number(run.crossEntropy), ""].joined(separator: ",")
    }

    /// Writes a random Chronos-native model (with an untrained lookahead head) for a benchmark
    /// without `--model`: 8 layers of 8 experts top-2, hidden 512, expert width 1024, bf16.
    static func writeSyntheticChronos(to directory: URL) throws {
        let configuration = ChronosConfiguration(
            vocabSize: 8000, hiddenSize: 512, hiddenLayers: 8, attentionHeads: 8, keyValueHeads: 2, headDim: 64, kvLatentDim: 128,
            ropeDim: 32, slidingWindow: 256, experts: 8, expertsPerToken: 2, sharedExperts: 1, moeIntermediateSize: 1024,
            sharedExpertIntermediateSize: 1024, lookaheadSteps: 4)
        var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 11)
        for (name, tensor) in weights {
            // Routers are scaled up so routing is decisive, as in a trained model.
            let scaled = name.hasSuffix("mlp.gate.weight") ? Tensor(shape: tensor.shape, values: tensor.floats.map { $0 * 50 }) : tensor
            weights[name] = scaled.converted(to: .bf16)
        }
        try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: directory)
    }
}
