import Foundation

/// A setting — a command-line option, an environment variable, a configuration field or a
/// request parameter — whose value is outside what it may take.
///
/// Library types check their settings under their configuration-file names (`top_p`,
/// `batch_size`); a caller that took the value under another name renames the error
/// (`--top-p`) before showing it, so the user reads the name they typed.
public struct InvalidSetting: Error, CustomStringConvertible, Equatable, Sendable {
    /// The setting's name as its source spells it.
    public var name: String
    /// The value given, as text.
    public var value: String
    /// What the setting accepts.
    public var expected: String

    /// An error for setting `name` given `value`, which should have been `expected`.
    public init(name: String, value: String, expected: String) {
        self.name = name
        self.value = value
        self.expected = expected
    }

    /// One line naming the setting, its value and what it accepts.
    public var description: String { "\(name) \(value) is invalid: expected \(expected)" }

    /// The same error under the name `rename` gives for this one's (its own where nil).
    public func renamed(_ rename: (String) -> String?) -> InvalidSetting {
        InvalidSetting(name: rename(name) ?? name, value: value, expected: expected)
    }

    /// The command-line spelling of a configuration name: `top_p` → `--top-p`.
    public static func optionName(_ name: String) -> String {
        "--" + name.replacingOccurrences(of: "_", with: "-")
    }

    /// Throws unless `value` lies in `range`; NaN lies in no range.
    public static func check<T: Comparable>(_ name: String, _ value: T, in range: ClosedRange<T>) throws(InvalidSetting) {
        guard range.contains(value) else {
            throw InvalidSetting(name: name, value: "\(value)", expected: describe(range))
        }
    }

    /// Throws unless `value` is nil or lies in `range`.
    public static func check<T: Comparable>(_ name: String, _ value: T?, in range: ClosedRange<T>) throws(InvalidSetting) {
        if let value { try check(name, value, in: range) }
    }

    /// The integer that the text of setting `name` (an environment variable, say) spells, if it
    /// lies in `range`.
    public static func integer(_ name: String, _ text: String, in range: ClosedRange<Int>) throws(InvalidSetting) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw InvalidSetting(name: name, value: "'\(text)'", expected: "an integer " + describe(range))
        }
        try check(name, value, in: range)
        return value
    }

    /// The number that the text of setting `name` spells, if it lies in `range`.
    public static func number(_ name: String, _ text: String, in range: ClosedRange<Double>) throws(InvalidSetting) -> Double {
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)) else {
            throw InvalidSetting(name: name, value: "'\(text)'", expected: "a number " + describe(range))
        }
        try check(name, value, in: range)
        return value
    }

    /// `between 1 and 64`, `at least 0`, `at most 1`.
    static func describe<T: Comparable>(_ range: ClosedRange<T>) -> String {
        func unbounded(_ bound: T) -> Bool {
            switch bound {
            case let value as Double: value.isInfinite || abs(value) >= Double(Int.max)
            case let value as Float: value.isInfinite || abs(value) >= Float(Int.max)
            case let value as Int: value == .max || value == .min
            case let value as UInt64: value == .max
            default: false
            }
        }
        switch (unbounded(range.lowerBound), unbounded(range.upperBound)) {
        case (false, true): return "at least \(range.lowerBound)"
        case (true, false): return "at most \(range.upperBound)"
        case (true, true): return "a finite value"
        case (false, false): return "between \(range.lowerBound) and \(range.upperBound)"
        }
    }
}

extension ClosedRange where Bound: BinaryFloatingPoint {
    /// Every finite value of `Bound` at least `lower`.
    public static func atLeast(_ lower: Bound) -> ClosedRange<Bound> { lower...Bound.greatestFiniteMagnitude }
}
