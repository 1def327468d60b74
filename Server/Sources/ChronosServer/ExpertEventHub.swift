import Synchronization

/// Hands each decoding step's IO snapshot to every client of `GET /v1/chronos/events`.
///
/// Generation threads publish; a snapshot is only built while some client listens, so a server
/// nobody watches does no extra work per token.
public final class ExpertEventHub: Sendable {
    private struct Listeners {
        var next = 0
        var byID: [Int: @Sendable (JSONValue) -> Void] = [:]
    }

    private let listeners = Mutex(Listeners())
    private let listenerCount = Atomic<Int>(0)

    /// A hub nobody listens to yet.
    public init() {}

    /// Whether any client listens now.
    public var hasListeners: Bool { listenerCount.load(ordering: .relaxed) > 0 }

    /// Calls `receive` with every later snapshot until `removeListener` is given the returned id.
    public func addListener(_ receive: @escaping @Sendable (JSONValue) -> Void) -> Int {
        listeners.withLock { listeners in
            let id = listeners.next
            listeners.next += 1
            listeners.byID[id] = receive
            listenerCount.store(listeners.byID.count, ordering: .relaxed)
            return id
        }
    }

    /// Stops calling the listener `id`.
    public func removeListener(_ id: Int) {
        listeners.withLock { listeners in
            listeners.byID[id] = nil
            listenerCount.store(listeners.byID.count, ordering: .relaxed)
        }
    }

    /// Sends the snapshot `make` builds to every listener; `make` is not called when none listens.
    public func publish(_ make: () -> JSONValue) {
        guard hasListeners else { return }
        let receivers = listeners.withLock { Array($0.byID.values) }
        guard !receivers.isEmpty else { return }
        let value = make()
        for receive in receivers { receive(value) }
    }
}
