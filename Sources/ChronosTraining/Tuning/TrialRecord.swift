import Foundation

/// Whether an objective is better low or high.
public enum ObjectiveDirection: String, Sendable, Equatable {
    /// Lower is better (a loss, a stall time).
    case minimize
    /// Higher is better (a throughput).
    case maximize

    /// `value` turned so that lower is better.
    public func loss(_ value: Double) -> Double { self == .minimize ? value : -value }
}

/// How a trial ended.
public enum TrialState: String, Sendable, Equatable {
    /// It ran to the end and has a value per objective.
    case complete
    /// The pruner stopped it early; its last intermediate value stands for it.
    case pruned
    /// It produced a value that is not a finite number (training diverged): worse than any other.
    case failed
}

/// A finished trial: what was tried and how it scored.
public struct TrialRecord: Sendable, Equatable {
    /// The trial's number in its study, from 0.
    public var number: Int
    /// The values of the active parameters.
    public var parameters: [String: ParameterValue]
    /// How it ended.
    public var state: TrialState
    /// One value per objective (complete trials only), in the objectives' order and units.
    public var values: [Double]
    /// Intermediate values (held-out loss, lower is better) by step.
    public var intermediate: [Int: Double]

    /// A record of trial `number`.
    public init(
        number: Int, parameters: [String: ParameterValue], state: TrialState, values: [Double], intermediate: [Int: Double] = [:]
    ) {
        self.number = number
        self.parameters = parameters
        self.state = state
        self.values = values
        self.intermediate = intermediate
    }
}

/// Non-dominated sorting of objective vectors (lower is better in every coordinate).
public enum ParetoFront {
    /// Whether `a` is no worse than `b` everywhere and better somewhere.
    public static func dominates(_ a: [Double], _ b: [Double]) -> Bool {
        zip(a, b).allSatisfy { $0 <= $1 } && zip(a, b).contains { $0 < $1 }
    }

    /// The indices of the vectors no other vector dominates, in order.
    public static func front(_ points: [[Double]]) -> [Int] {
        points.indices.filter { i in !points.indices.contains { dominates(points[$0], points[i]) } }
    }

    /// Each vector's non-dominated rank: 0 on the front, 1 on the front of the rest, and so on.
    public static func ranks(_ points: [[Double]]) -> [Int] {
        var ranks = [Int](repeating: -1, count: points.count)
        var remaining = Array(points.indices)
        var rank = 0
        while !remaining.isEmpty {
            let layer = remaining.filter { i in !remaining.contains { dominates(points[$0], points[i]) } }
            for i in layer { ranks[i] = rank }
            remaining.removeAll { ranks[$0] == rank }
            rank += 1
        }
        return ranks
    }

    /// Crowding distance of each vector within its own set (NSGA-II): the sum over objectives of
    /// the normalised gap between its neighbours; the extremes of any objective are infinite.
    public static func crowding(_ points: [[Double]]) -> [Double] {
        var distance = [Double](repeating: 0, count: points.count)
        guard let dimensions = points.first?.count, points.count > 2 else {
            return distance.map { _ in .infinity }
        }
        for d in 0..<dimensions {
            let order = points.indices.sorted { points[$0][d] < points[$1][d] }
            let span = points[order.last!][d] - points[order.first!][d]
            distance[order.first!] = .infinity
            distance[order.last!] = .infinity
            guard span > 0 else { continue }
            for r in 1..<(order.count - 1) {
                distance[order[r]] += (points[order[r + 1]][d] - points[order[r - 1]][d]) / span
            }
        }
        return distance
    }
}
