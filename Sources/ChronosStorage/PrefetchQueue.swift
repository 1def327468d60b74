import ChronosModel

/// How urgent a load is. Lower sorts first: the expert a layer is blocked on, then the rest of
/// that layer's needs in the order it will use them, then loads left over from earlier layers,
/// then the next layer's previewed experts, then the predictions for the tokens to come, nearest
/// first, and last the prompt-level set.
public struct PrefetchPriority: Comparable, Sendable, Hashable, CustomStringConvertible {
    /// The class: 0 needs of the current layer, 1 earlier needs, 2 the next layer's preview,
    /// 2 + d predictions for the d-th token from the one running or about to run (d = 1 is that
    /// token itself), `promptClass` the prompt-level set.
    public let level: Int
    /// Order within the class (the use order of a layer's needs; the predictor's order otherwise).
    public let order: Int
    /// For a lookahead prediction: k, the offset of the token it is for from the token t it was
    /// made after, and who predicted it.
    public let offset: Int, source: LookaheadSource?

    private init(level: Int, order: Int, offset: Int = 0, source: LookaheadSource? = nil) {
        self.level = level
        self.order = order
        self.offset = offset
        self.source = source
    }

    /// The class of the prompt-level set: after every lookahead offset.
    public static let promptClass = 1 << 20

    /// The expert the decode thread is blocked on now.
    public static let blocking = PrefetchPriority(level: 0, order: -1)
    /// The `rank`-th need of the current layer.
    public static func need(rank: Int) -> PrefetchPriority { PrefetchPriority(level: 0, order: rank) }
    /// A need of an earlier layer still loading (after a fallback).
    public static func lateNeed(rank: Int) -> PrefetchPriority { PrefetchPriority(level: 1, order: rank) }
    /// The `order`-th expert previewed for the next MoE layer of the token being computed.
    public static func nextLayer(order: Int) -> PrefetchPriority { PrefetchPriority(level: 2, order: order) }
    /// The `order`-th prediction of `source` for token t + `offset` (offset ≥ 1), made after
    /// token t and queued before token t + 1 runs, or (`whileRunning`) while token t still runs:
    /// then token t's own predicted loads come first.
    public static func lookahead(offset: Int, order: Int, source: LookaheadSource = .head, whileRunning: Bool = false) -> PrefetchPriority {
        PrefetchPriority(level: 2 + offset + (whileRunning ? 1 : 0), order: order, offset: offset, source: source)
    }
    /// The `order`-th expert of the prompt-level set.
    public static func prompt(order: Int) -> PrefetchPriority { PrefetchPriority(level: promptClass, order: order) }

    /// Whether it is a need (loaded into the hot set) rather than a prediction (loaded into staging).
    public var isNeed: Bool { level <= 1 }
    /// Whether it is a next-layer preview.
    public var isNextLayer: Bool { level == 2 }
    /// Whether it is a lookahead prediction (some t+k).
    public var isLookahead: Bool { level > 2 && level < Self.promptClass }

    /// Whether `a` is more urgent than `b`.
    public static func < (a: PrefetchPriority, b: PrefetchPriority) -> Bool { (a.level, a.order) < (b.level, b.order) }

    /// `need#2`, `next-layer#0`, `t+1#5` (offset k), `prompt#3`.
    public var description: String {
        switch level {
        case 0: "need#\(order)"
        case 1: "late-need#\(order)"
        case 2: "next-layer#\(order)"
        case Self.promptClass: "prompt#\(order)"
        default: "t+\(offset)#\(order)"
        }
    }
}

/// Loads waiting for an IO thread, one per expert, best priority first. Not thread-safe: the
/// expert store guards it with its lock.
struct PrefetchQueue {
    private(set) var requests: [ExpertKey: PrefetchPriority] = [:]

    /// Whether nothing waits.
    var isEmpty: Bool { requests.isEmpty }

    /// Queues `key` at `priority`, or raises its priority if it waits already at a lower one.
    mutating func push(_ key: ExpertKey, _ priority: PrefetchPriority) {
        if let old = requests[key], old <= priority { return }
        requests[key] = priority
    }

    /// Removes `key`; returns its priority if it was waiting.
    @discardableResult
    mutating func remove(_ key: ExpertKey) -> PrefetchPriority? { requests.removeValue(forKey: key) }

    /// Every waiting request, best first.
    func ordered() -> [(key: ExpertKey, priority: PrefetchPriority)] {
        requests.map { ($0.key, $0.value) }.sorted {
            ($0.priority, $0.key.layer, $0.key.expert) < ($1.priority, $1.key.layer, $1.key.expert)
        }
    }

    /// Removes every request that `drop` selects; returns them.
    mutating func removeAll(where drop: (ExpertKey, PrefetchPriority) -> Bool) -> [ExpertKey] {
        let dropped = requests.filter { drop($0.key, $0.value) }.map(\.key)
        for key in dropped { requests.removeValue(forKey: key) }
        return dropped
    }

    /// Moves the needs of the current layer that still wait to the late-need class, except the
    /// blocking ones: a generation is waiting on each of those now, and when several share the
    /// store another's step must not push them behind its own needs.
    mutating func demoteNeeds() {
        for (key, priority) in requests where priority.level == 0 && priority.order >= 0 {
            requests[key] = .lateNeed(rank: priority.order)
        }
    }
}
