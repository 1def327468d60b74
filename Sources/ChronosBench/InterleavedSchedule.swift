/// The order in which a benchmark takes its measurements: round after round, each round
/// measuring every candidate once in the order given (a bound first, then what is judged
/// against it), so that a drift in a shared machine's speed reaches every candidate alike
/// instead of favouring whichever ran while the machine was quiet.
public struct InterleavedSchedule: Sequence, Sendable {
    /// One measurement of the schedule: which round, and which candidate (an index into the
    /// candidates as given).
    public struct Slot: Equatable, Sendable {
        /// The round, from 0.
        public var round: Int
        /// The candidate's index, from 0.
        public var candidate: Int

        /// A slot of `round` for `candidate`.
        public init(round: Int, candidate: Int) {
            self.round = round
            self.candidate = candidate
        }
    }

    /// Rounds, each measuring every candidate once.
    public let rounds: Int
    /// Candidates measured in each round.
    public let candidates: Int

    /// A schedule of `rounds` rounds over `candidates` candidates.
    public init(rounds: Int, candidates: Int) {
        self.rounds = Swift.max(0, rounds)
        self.candidates = Swift.max(0, candidates)
    }

    /// The slots in the order they are measured: (0, 0), (0, 1), …, (1, 0), (1, 1), ….
    public func makeIterator() -> Iterator { Iterator(candidates: candidates, count: rounds * candidates) }

    /// Walks the slots round by round.
    public struct Iterator: IteratorProtocol {
        let candidates: Int, count: Int
        var position = 0

        /// The next slot, or nil after the last round.
        public mutating func next() -> Slot? {
            guard position < count else { return nil }
            defer { position += 1 }
            return Slot(round: position / candidates, candidate: position % candidates)
        }
    }

    /// Each candidate's best (largest) value over the rounds, `measure` being called in the
    /// schedule's order; for throughputs, where the best round is the one least disturbed.
    public func best(_ measure: (Slot) throws -> Double) rethrows -> [Double] {
        var best = [Double](repeating: -.infinity, count: candidates)
        for slot in self { best[slot.candidate] = Swift.max(best[slot.candidate], try measure(slot)) }
        return best
    }
}
