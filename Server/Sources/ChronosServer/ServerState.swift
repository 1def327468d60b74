import Synchronization

/// Whether the server's model is still loading or serving.
public final class ServerState: Sendable {
    private enum Phase {
        case loading
        case ready(GenerationScheduler)
    }

    private let phase = Mutex(Phase.loading)

    /// A server whose model is loading.
    public init() {}

    /// The model is loaded: requests are served by `scheduler` from now on.
    public func serve(_ scheduler: GenerationScheduler) {
        phase.withLock { $0 = .ready(scheduler) }
    }

    /// The scheduler, once the model is loaded.
    public var scheduler: GenerationScheduler? {
        phase.withLock {
            if case .ready(let scheduler) = $0 { scheduler } else { nil }
        }
    }
}
