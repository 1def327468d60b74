import ArgumentParser
import ChronosTensor

/// The `--backend` option shared by every command that computes.
struct BackendOption: ParsableArguments {
    @Option(help: "Compute backend: swift, openblas or accelerate (default: CHRONOS_BACKEND, else the best available).")
    var backend: String?

    /// Selects the requested backend, failing with the reason when it cannot be used.
    func apply() throws {
        guard let backend else { return }
        do { try Backends.select(backend) } catch { throw ValidationError("\(error)") }
    }
}

/// `chronos backends`: which compute backends exist here and which one is used.
struct BackendsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backends",
        abstract: "List compute backends, whether each is available, the one selected, and the instruction set in use.")

    @OptionGroup var backend: BackendOption

    func run() throws {
        try backend.apply()
        let selected = Backends.current.name
        for status in Backends.statuses {
            let mark = status.name == selected ? "*" : " "
            let available = status.isAvailable ? "yes" : "no "
            print("\(mark) \(status.name.padding(toLength: 11, withPad: " ", startingAt: 0)) available: \(available)  \(status.reason)")
        }
        print("selected: \(selected) (threads: \(ThreadPool.shared.threadCount))")
        let supported = InstructionSet.supported.map(\.rawValue).joined(separator: ", ")
        print("instruction set: \(InstructionSet.current) (supported here: \(supported); CHRONOS_ISA picks another)")
    }
}
