import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTraining
import Foundation
import Hummingbird
import Synchronization

/// Pretraining runs and tuning studies started from the web UI, run in the background one at a
/// time inside the server's workspace folder, each with its live loss curve; and the runs and
/// studies already in the workspace (from an earlier server, or from `chronos`), read back from
/// their logs. A job competes with the requests being served for the processor, never for a lock.
///
/// A job's output directory keeps its log: a run's `metrics.jsonl` (and its chart `loss.svg`),
/// a study's `trials.jsonl`, and `job.json` with what the request asked for and how the job
/// ended.
public final class TrainingJobs: Sendable {
    /// What a job does.
    public enum Kind: String, Sendable {
        /// `chronos train pretrain`: one run.
        case pretrain
        /// `chronos tune`: a study of short pretraining runs.
        case study
    }

    /// Where a job is.
    public enum State: String, Sendable {
        /// Training.
        case running
        /// Every step (or trial) done.
        case finished
        /// Stopped by an error.
        case failed
        /// Stopped on request, at a step's end.
        case cancelled
        /// Recorded as running by a server that is no longer running it.
        case interrupted
        /// Found in the workspace without a record of how it ended (run by `chronos`).
        case saved
    }

    /// A point of a loss curve: the training loss and cross-entropy of a step, or the held-out
    /// cross-entropy of an evaluation after it.
    struct Point: Sendable {
        var step: Int
        var loss: Double?
        var crossEntropy: Double?
        var heldOut: Double?
    }

    /// A finished trial of a study.
    struct Trial: Sendable {
        var number: Int
        var state: String
        var values: [Double]
        var parameters: [String: JSONValue]
    }

    /// One job, running here or read back from its directory.
    struct Job: Sendable {
        /// Its number in this server (nil: found in the workspace).
        var id: Int?
        var kind: Kind
        /// The output directory, relative to the workspace.
        var output: String
        var state: State
        /// What the request asked for.
        var settings: JSONValue = .object([:])
        /// Steps of the run, or of each trial.
        var steps: Int?
        /// Trials a study runs to.
        var trialsWanted: Int?
        /// What the job does now: `tokenizer`, `data`, `training` or a trial's number.
        var phase = ""
        /// The run's curve, or the running trial's.
        var curve: [Point] = []
        /// A study's running trial.
        var trial: Int?
        /// A study's finished trials, and its objectives' names and directions.
        var trials: [Trial] = []
        var objectives: [(name: String, direction: ObjectiveDirection)] = []
        var error: String?
        var cancelRequested = false
    }

    /// A job stopped on request.
    private struct Cancelled: Error {}

    /// The folder jobs read from and write into.
    public let workspace: TrainingWorkspace
    private let jobs = Mutex<[Job]>([])
    /// Jobs read back from the workspace, by directory, with the time their log last changed.
    private let recorded = Mutex<[String: (modified: Date, job: Job)]>([:])

    /// Points a curve keeps; a longer one is thinned to half as many, evenly (its last kept).
    static let curveLimit = 2000
    /// The name of a job's record in its output directory.
    static let recordName = "job.json"

    /// Jobs in `workspace`.
    public init(workspace: TrainingWorkspace) {
        self.workspace = workspace
    }

    // MARK: Starting and stopping

    /// Starts the pretraining run `body` asks for (202 with its id): refused while another job
    /// runs (409), when the output directory holds an earlier run (409), and for a field out of
    /// range or a path outside the workspace (400 naming the field).
    func startPretraining(_ body: Data) throws(APIError) -> Int {
        let fields = try RequestFields(body, allowed: PretrainRequest.keys.union(["output", "checkpoint_every"]))
        let outputPath = try fields.requiredString("output")
        let output = try workspace.resolve(outputPath, field: "output", existing: false)
        var request = try PretrainRequest(fields, workspace: workspace, output: output)
        request.settings.checkpointEvery = try fields.int("checkpoint_every") ?? 200
        request.settings.tokenizer = request.tokenizer ?? output.appendingPathComponent("tokenizer")
        try PretrainRequest.validate(request.settings)
        request.summary["checkpoint_every"] = .number(Double(request.settings.checkpointEvery))
        request.summary["output"] = .string(workspace.relative(output))
        try refuseOther(in: output, path: outputPath, log: StudyLog.fileName)

        let id = try claim(
            Job(
                id: nil, kind: .pretrain, output: workspace.relative(output), state: .running, settings: .object(request.summary),
                steps: request.settings.optimization.steps))
        do {
            // Refused before anything is written: a run that would lose work does no work.
            _ = try Checkpoint.prepare(runDirectory: output, start: .new)
        } catch {
            release(id)
            if let refusal = error as? CheckpointError, case .earlierRun = refusal {
                throw APIError(
                    status: .conflict, message: "output \(outputPath.debugDescription) holds an earlier run: choose a new output directory",
                    type: "invalid_request_error", param: "output", code: "earlier_run")
            }
            throw .invalid("output", "output \(outputPath.debugDescription): \(error)")
        }
        record(id)
        start(id, name: "chronos-training") { [self, request] in try pretrain(id, request) }
        return id
    }

    /// Starts the tuning study `body` asks for (202 with its id), or resumes the one in its
    /// output directory when that has the same settings; refused as `startPretraining` is, and
    /// when the directory holds a study with other settings (409).
    func startStudy(_ body: Data) throws(APIError) -> Int {
        let allowed = PretrainRequest.keys.union([
            "output", "space", "trials", "objectives", "startup_trials", "sampler", "sampler_seed", "prune"
        ])
        let fields = try RequestFields(body, allowed: allowed)
        let outputPath = try fields.requiredString("output")
        let output = try workspace.resolve(outputPath, field: "output", existing: false)
        var request = try PretrainRequest(fields, workspace: workspace, output: output)
        request.settings.checkpointEvery = 0
        request.settings.tokenizer = request.tokenizer ?? output.appendingPathComponent("tokenizer")
        try PretrainRequest.validate(request.settings)

        let spacePath = try fields.requiredString("space")
        let spaceFile = try workspace.resolve(spacePath, field: "space", existing: true)
        let space: SearchSpace
        do {
            space = try SearchSpace(json: Data(contentsOf: spaceFile))
            try PretrainTuning.validate(space, base: request.settings)
        } catch {
            throw .invalid("space", "space \(spacePath.debugDescription): \(error)")
        }
        let trials = try fields.int("trials") ?? 8
        guard (1...10_000).contains(trials) else { throw .invalid("trials", "trials \(trials) is invalid: expected 1 to 10000") }
        let startupTrials = try fields.int("startup_trials") ?? min(10, max(1, trials / 2))
        guard (0...10_000).contains(startupTrials) else {
            throw .invalid("startup_trials", "startup_trials \(startupTrials) is invalid: expected 0 to 10000")
        }
        let samplerName = try fields.string("sampler") ?? TPESampler.Mode.multivariate.rawValue
        guard let mode = TPESampler.Mode(rawValue: samplerName) else {
            throw .invalid(
                "sampler",
                "sampler \(samplerName.debugDescription) is invalid: expected one of \(TPESampler.Mode.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        let samplerSeed = try fields.int("sampler_seed") ?? 0
        guard samplerSeed >= 0 else {
            throw .invalid("sampler_seed", "sampler_seed \(samplerSeed) is invalid: expected a whole number from 0")
        }
        let objectives = try fields.strings("objectives") ?? ["heldout-ce"]
        guard objectives == ["heldout-ce"] else {
            throw .invalid(
                "objectives",
                "objectives \(objectives) is invalid: the server's studies are scored on [\"heldout-ce\"] (held-out cross-entropy); the offload objectives run from `chronos tune`"
            )
        }
        let prune = try fields.bool("prune") ?? true

        request.summary.merge([
            "output": .string(workspace.relative(output)), "space": .string(workspace.relative(spaceFile)),
            "trials": .number(Double(trials)), "startup_trials": .number(Double(startupTrials)),
            "sampler": .string(mode.rawValue), "sampler_seed": .number(Double(samplerSeed)), "prune": .bool(prune),
            "objectives": ["heldout-ce"]
        ]) { $1 }
        try refuseOther(in: output, path: outputPath, log: "metrics.jsonl")
        let header = StudyHeader(
            space: space, objectives: [StudyObjective(name: "heldout-ce", direction: .minimize)], sampler: mode,
            settings: Self.studySettings(request.summary))
        let id = try claim(
            Job(
                id: nil, kind: .study, output: workspace.relative(output), state: .running, settings: .object(request.summary),
                steps: request.settings.optimization.steps, trialsWanted: trials, objectives: [("heldout-ce", .minimize)]))
        let log: StudyLog
        do {
            log = try StudyLog(directory: output, header: header)
        } catch let error as StudyLogError {
            release(id)
            throw APIError(
                status: .conflict, message: "output \(outputPath.debugDescription): \(error.reason)", type: "invalid_request_error",
                param: "output", code: "earlier_study")
        } catch {
            release(id)
            throw .invalid("output", "output \(outputPath.debugDescription): \(error)")
        }
        update(id) { $0.trials = log.trials.map(Self.trial) }
        record(id)
        start(id, name: "chronos-tuning") { [self, request] in
            try study(
                id, request, header: header, trials: trials,
                sampler: TPESampler(startupTrials: startupTrials, mode: mode, seed: UInt64(samplerSeed)),
                pruner: prune ? MedianPruner() : nil)
        }
        return id
    }

    /// Asks job `id` of `kind` to stop at the end of the step it is taking; 404 for an unknown id.
    func cancel(_ id: Int, kind: Kind) throws(APIError) {
        let found = jobs.withLock { jobs in
            guard let index = jobs.firstIndex(where: { $0.id == id && $0.kind == kind }) else { return false }
            if jobs[index].state == .running { jobs[index].cancelRequested = true }
            return true
        }
        guard found else {
            throw APIError(status: .notFound, message: "no \(Self.noun(kind)) job \(id)", type: "invalid_request_error", param: "id")
        }
    }

    /// Refuses (409) an output directory that holds the other kind of job: its `log`.
    private func refuseOther(in output: URL, path: String, log: String) throws(APIError) {
        guard FileManager.default.fileExists(atPath: output.appendingPathComponent(log).path) else { return }
        throw APIError(
            status: .conflict,
            message: "output \(path.debugDescription) holds \(log == "metrics.jsonl" ? "a run" : "a study"): choose a new output directory",
            type: "invalid_request_error", param: "output", code: "earlier_run")
    }

    /// Registers `job` as running with a new id; refused while any job runs.
    private func claim(_ job: Job) throws(APIError) -> Int {
        let id: Int? = jobs.withLock { jobs in
            guard !jobs.contains(where: { $0.state == .running }) else { return nil }
            var job = job
            job.id = (jobs.last?.id ?? 0) + 1
            jobs.append(job)
            return job.id
        }
        guard let id else {
            throw APIError(
                status: .conflict, message: "a training or tuning job is already running: wait for it or stop it",
                type: "invalid_request_error",
                code: "job_running")
        }
        return id
    }

    /// Forgets job `id`, which did not start.
    private func release(_ id: Int) {
        jobs.withLock { $0.removeAll { $0.id == id } }
    }

    /// Runs `work` for job `id` on a thread of its own, then records how it ended.
    private func start(_ id: Int, name: String, _ work: @escaping @Sendable () throws -> Void) {
        let thread = Thread { [self] in
            do {
                try work()
                update(id) { $0.state = .finished }
            } catch is Cancelled {
                update(id) { $0.state = .cancelled }
            } catch {
                update(id) {
                    $0.state = .failed
                    $0.error = "\(error)"
                }
            }
            update(id) {
                $0.phase = ""
                $0.trial = nil
            }
            record(id)
        }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    private func update(_ id: Int, _ change: (inout Job) -> Void) {
        jobs.withLock { jobs in
            if let index = jobs.firstIndex(where: { $0.id == id }) { change(&jobs[index]) }
        }
    }

    /// Adds a step's point to job `id`'s curve; throws `Cancelled` when the job was asked to stop.
    private func add(_ point: Point, to id: Int, step: Int? = nil) throws {
        var stop = false
        update(id) { job in
            if point.heldOut != nil, let index = job.curve.lastIndex(where: { $0.step == point.step }) {
                job.curve[index].heldOut = point.heldOut
            } else {
                job.curve.append(point)
                if job.curve.count > Self.curveLimit { job.curve = Self.thinned(job.curve) }
            }
            stop = job.cancelRequested
        }
        if stop { throw Cancelled() }
    }

    // MARK: The jobs

    /// Trains the tokenizer when the request names none, then the run.
    private func pretrain(_ id: Int, _ request: PretrainRequest) throws {
        if request.tokenizer == nil {
            update(id) { $0.phase = "tokenizer" }
            try Self.trainTokenizer(data: request.settings.data, vocabularySize: request.vocabularySize, into: request.settings.tokenizer)
        }
        update(id) { $0.phase = "data" }
        let run = try PretrainRun(settings: request.settings)
        update(id) { $0.phase = "training" }
        try run.run(start: .new) { event in try self.follow(event, of: id) }
    }

    /// Runs the study's trials until `count` have finished, each a short pretraining run in
    /// `OUTPUT/trials/N` scored on its held-out cross-entropy.
    private func study(
        _ id: Int, _ request: PretrainRequest, header: StudyHeader, trials count: Int, sampler: TPESampler, pruner: MedianPruner?
    ) throws {
        let directory = request.settings.output
        if request.tokenizer == nil, !ModelDirectory(request.settings.tokenizer).hasTokenizer {
            update(id) { $0.phase = "tokenizer" }
            try Self.trainTokenizer(data: request.settings.data, vocabularySize: request.vocabularySize, into: request.settings.tokenizer)
        }
        let study = try Study(directory: directory, header: header, sampler: sampler, pruner: pruner)
        try study.run(
            trials: count,
            objective: { trial in
                update(id) {
                    $0.trial = trial.number
                    $0.phase = "data"
                    $0.curve = []
                }
                let (_, crossEntropy) = try PretrainTuning.train(trial, base: request.settings, study: directory) { event in
                    if case .started = event { update(id) { $0.phase = "training" } }
                    try self.follow(event, of: id)
                }
                return [crossEntropy]
            },
            onTrial: { record in update(id) { $0.trials.append(Self.trial(record)) } })
    }

    /// Adds a run's step or evaluation to job `id`'s curve.
    private func follow(_ event: PretrainEvent, of id: Int) throws {
        switch event {
        case .step(let report, _, _):
            let parts = report.parts
            try add(Point(step: report.step, loss: parts["loss"].map(Double.init), crossEntropy: parts["ce"].map(Double.init)), to: id)
        case .evaluated(let step, let crossEntropy):
            try add(Point(step: step, heldOut: crossEntropy), to: id)
        case .started, .checkpoint: break
        }
    }

    /// Trains a byte-level BPE tokenizer of `vocabularySize` tokens on the texts of `data` into
    /// `directory`, as `chronos tokenizer train` does.
    static func trainTokenizer(data: URL, vocabularySize: Int, into directory: URL) throws {
        var trainer = TokenizerTrainer(vocabularySize: vocabularySize)
        try trainer.add(jsonl: data)
        try trainer.train().writeChatTokenizer(into: directory)
    }

    /// The settings that make two studies the same one, as the study log's header keeps them.
    static func studySettings(_ summary: [String: JSONValue]) -> [String: String] {
        var settings: [String: String] = [:]
        for (key, value) in summary where !["trials", "output", "space", "objectives", "sampler"].contains(key) {
            settings[key] = value.text
        }
        return settings
    }

    static func trial(_ record: TrialRecord) -> Trial {
        Trial(
            number: record.number, state: record.state.rawValue, values: record.values,
            parameters: record.parameters.mapValues { value in value.number.map { .number($0) } ?? .string(value.description) })
    }

    // MARK: The list

    /// The jobs of `kind`: those in the workspace first, oldest first, then those started here.
    func json(_ kind: Kind) -> JSONValue {
        let live = jobs.withLock { $0 }.filter { $0.kind == kind }
        let liveOutputs = Set(live.map(\.output))
        let found = workspace.recordedDirectories().filter { $0.kind == kind }.compactMap { entry -> Job? in
            let output = workspace.relative(entry.url)
            return liveOutputs.contains(output) ? nil : readBack(entry.url, kind: kind, output: output)
        }
        let key = kind == .pretrain ? "training" : "tuning"
        return .object([key: .array((found + live).map(Self.json)), "workspace": .string(workspace.root.path)])
    }

    private static func json(_ job: Job) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": job.id.map { .number(Double($0)) } ?? nil, "kind": .string(job.kind.rawValue), "output": .string(job.output),
            "state": .string(job.state.rawValue), "phase": .string(job.phase), "settings": job.settings,
            "steps": job.steps.map { .number(Double($0)) } ?? nil,
            "step": .number(Double(job.curve.last(where: { $0.loss != nil })?.step ?? 0)),
            "error": job.error.map { .string($0) } ?? nil,
            "curve": .array(
                thinned(job.curve, limit: 400).map { point in
                    [
                        "step": .number(Double(point.step)), "loss": point.loss.map { .number($0) } ?? nil,
                        "ce": point.crossEntropy.map { .number($0) } ?? nil, "heldout_ce": point.heldOut.map { .number($0) } ?? nil
                    ]
                })
        ]
        if job.kind == .study {
            object["trial"] = job.trial.map { .number(Double($0)) } ?? nil
            object["trials_wanted"] = job.trialsWanted.map { .number(Double($0)) } ?? nil
            object["objectives"] = .array(job.objectives.map { ["name": .string($0.name), "direction": .string($0.direction.rawValue)] })
            object["trials"] = .array(
                job.trials.map { trial in
                    [
                        "number": .number(Double(trial.number)), "state": .string(trial.state),
                        "values": .array(trial.values.map { .number($0) }),
                        "parameters": .object(trial.parameters)
                    ]
                })
            object["best"] = best(job).map { .number(Double($0.number)) } ?? nil
        }
        return .object(object)
    }

    /// The complete trial with the best value of the first objective.
    static func best(_ job: Job) -> Trial? {
        let direction = job.objectives.first?.direction ?? .minimize
        return job.trials.filter { $0.state == "complete" && !$0.values.isEmpty }.min { a, b in
            (direction.loss(a.values[0]), a.number) < (direction.loss(b.values[0]), b.number)
        }
    }

    /// The curve with at most `limit` points: every k-th, and the last.
    static func thinned(_ curve: [Point], limit: Int = curveLimit / 2) -> [Point] {
        guard curve.count > limit else { return curve }
        let stride = (curve.count + limit - 1) / limit
        var kept = Swift.stride(from: 0, to: curve.count - 1, by: stride).map { curve[$0] }
        kept.append(curve[curve.count - 1])
        return kept
    }

    // MARK: Records in the workspace

    /// Writes job `id`'s record into its output directory.
    private func record(_ id: Int) {
        guard let job = jobs.withLock({ $0.first { $0.id == id } }) else { return }
        let record: JSONValue = [
            "kind": .string(job.kind.rawValue), "state": .string(job.state.rawValue), "settings": job.settings,
            "steps": job.steps.map { .number(Double($0)) } ?? nil, "trials_wanted": job.trialsWanted.map { .number(Double($0)) } ?? nil,
            "error": job.error.map { .string($0) } ?? nil
        ]
        let url = workspace.root.appendingPathComponent(job.output).appendingPathComponent(Self.recordName)
        try? AtomicFile.write(Data(record.text.utf8), to: url)
    }

    /// The job whose output is `directory`, read from its log and record (reread only when the
    /// log has changed since).
    private func readBack(_ directory: URL, kind: Kind, output: String) -> Job? {
        let log = directory.appendingPathComponent(kind == .pretrain ? "metrics.jsonl" : StudyLog.fileName)
        let record = directory.appendingPathComponent(Self.recordName)
        let modified = [log, record].compactMap { url in
            (try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date
        }.max()
        guard let modified else { return nil }
        if let cached = recorded.withLock({ $0[output] }), cached.modified == modified { return cached.job }
        var job = Job(id: nil, kind: kind, output: output, state: .saved)
        if let data = try? Data(contentsOf: record), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            let state = (object["state"] as? String).flatMap(State.init(rawValue:)) ?? .saved
            job.state = state == .running ? .interrupted : state
            job.error = object["error"] as? String
            job.steps = (object["steps"] as? NSNumber)?.intValue
            job.trialsWanted = (object["trials_wanted"] as? NSNumber)?.intValue
            if let settings = object["settings"], let value = JSONValue(any: settings) { job.settings = value }
        }
        let lines = (try? String(decoding: Data(contentsOf: log), as: UTF8.self))?.split(separator: "\n") ?? []
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        if kind == .pretrain {
            for object in objects {
                guard let step = (object["step"] as? NSNumber)?.intValue else { continue }
                let number = { (key: String) in (object[key] as? NSNumber)?.doubleValue }
                let heldOut = number("heldout_ce") ?? number("eval_heldout_ce")
                let point = Point(step: step, loss: number("loss"), crossEntropy: number("ce"), heldOut: heldOut)
                if point.loss == nil, let heldOut, let index = job.curve.lastIndex(where: { $0.step == step }) {
                    job.curve[index].heldOut = heldOut
                } else if point.loss != nil || heldOut != nil {
                    job.curve.append(point)
                }
            }
            job.curve = Self.thinned(job.curve)
        } else if let header = objects.first {
            job.objectives = (header["objectives"] as? [[String: Any]] ?? []).compactMap { objective in
                guard let name = objective["name"] as? String,
                    let direction = (objective["direction"] as? String).flatMap(ObjectiveDirection.init(rawValue:))
                else { return nil }
                return (name, direction)
            }
            job.trials = objects.dropFirst().compactMap { object in
                guard let number = (object["number"] as? NSNumber)?.intValue, let state = object["state"] as? String else { return nil }
                let values = (object["values"] as? [NSNumber] ?? []).map(\.doubleValue)
                let parameters = (object["parameters"] as? [String: Any] ?? [:]).compactMapValues(JSONValue.init(any:))
                return Trial(number: number, state: state, values: values, parameters: parameters)
            }
        }
        recorded.withLock { $0[output] = (modified, job) }
        return job
    }

    static func noun(_ kind: Kind) -> String { kind == .pretrain ? "training" : "tuning" }

    /// The answer to a training or tuning request on a server started without a workspace.
    static let noWorkspace = APIError(
        status: .conflict,
        message: "this server was started without --workspace: restart chronos-server with --workspace DIR to train and tune models in DIR",
        type: "invalid_request_error", code: "no_workspace")
}

extension JSONValue {
    /// The value of something `JSONSerialization` read (true and false come back as 1 and 0),
    /// nil for what JSON has no value for.
    init?(any value: Any) {
        switch value {
        case is NSNull: self = .null
        case let text as String: self = .string(text)
        case let number as NSNumber: self = .number(number.doubleValue)
        case let list as [Any]: self = .array(list.compactMap(JSONValue.init(any:)))
        case let object as [String: Any]: self = .object(object.compactMapValues(JSONValue.init(any:)))
        default: return nil
        }
    }
}
