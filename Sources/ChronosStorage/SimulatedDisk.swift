import ChronosTensor
import Foundation

/// The latency and bandwidth of a simulated storage device.
public struct DiskModel: Sendable, Equatable, Codable {
    /// Seconds from a request to the start of its transfer.
    public var latency: Double
    /// Bytes per second the device transfers, shared by all requests.
    public var bandwidth: Double

    /// A device with `latency` seconds per request and `bandwidth` bytes per second.
    public init(latency: Double, bandwidth: Double) {
        self.latency = max(0, latency)
        self.bandwidth = max(1, bandwidth)
    }

    /// A device of `milliseconds` latency and `megabytesPerSecond` (10⁶ bytes) bandwidth.
    public init(milliseconds: Double, megabytesPerSecond: Double) {
        self.init(latency: milliseconds / 1000, bandwidth: megabytesPerSecond * 1e6)
    }

    /// Latencies a simulated device may have, in milliseconds.
    public static let millisecondsRange: ClosedRange<Double> = 0...60_000
    /// Bandwidths a simulated device may have, in MB/s (10⁶ bytes).
    public static let megabytesPerSecondRange: ClosedRange<Double> = 1...10_000_000

    /// A device of `milliseconds` latency and `megabytesPerSecond` bandwidth, with the
    /// parameters checked under the names `latencyName` and `bandwidthName`.
    public static func checked(
        milliseconds: Double, megabytesPerSecond: Double, latencyName: String = "latency_ms",
        bandwidthName: String = "bandwidth_mbps"
    ) throws(InvalidSetting) -> DiskModel {
        try InvalidSetting.check(latencyName, milliseconds, in: millisecondsRange)
        try InvalidSetting.check(bandwidthName, megabytesPerSecond, in: megabytesPerSecondRange)
        return DiskModel(milliseconds: milliseconds, megabytesPerSecond: megabytesPerSecond)
    }

    /// The model that `CHRONOS_SIM_SSD_MS` and `CHRONOS_SIM_SSD_MBPS` describe, or nil when
    /// neither is set (a missing one defaults to 0.1 ms or 2000 MB/s); throws when either is
    /// not a number in its range.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(InvalidSetting)
        -> DiskModel?
    {
        let ms = try environment["CHRONOS_SIM_SSD_MS"].map { text throws(InvalidSetting) in
            try InvalidSetting.number("CHRONOS_SIM_SSD_MS", text, in: millisecondsRange)
        }
        let mbps = try environment["CHRONOS_SIM_SSD_MBPS"].map { text throws(InvalidSetting) in
            try InvalidSetting.number("CHRONOS_SIM_SSD_MBPS", text, in: megabytesPerSecondRange)
        }
        guard ms != nil || mbps != nil else { return nil }
        return DiskModel(milliseconds: ms ?? 0.1, megabytesPerSecond: mbps ?? 2000)
    }

    /// Seconds one isolated read of `bytes` takes.
    public func seconds(forReading bytes: Int) -> Double { latency + Double(bytes) / bandwidth }
}

/// A disk that behaves like a device of a given `DiskModel`, for reproducible experiments: it
/// reads through the disk it wraps, then holds each read until the simulated device would have
/// finished it.
///
/// The device has one transfer channel: a request arriving at time a starts transferring at
/// max(a + latency, the end of the previous transfer) and ends `bytes / bandwidth` later, so
/// concurrent requests overlap their latencies but share the bandwidth (a queue-depth > 1 SSD).
/// Time is kept on a clock: on the system clock a read really waits for its completion; on a
/// `ManualClock` it moves the clock to that completion instead.
public final class SimulatedDisk: ExpertDisk, @unchecked Sendable {
    /// The disk that supplies the bytes.
    public let base: any ExpertDisk
    /// The simulated device.
    public let model: DiskModel
    /// The clock the device's time passes on.
    public let clock: any ExpertStoreClock
    private let lock = NSLock()
    private var channelFreeAt: UInt64 = 0

    /// `base` slowed to `model`, its time kept on `clock`.
    public init(wrapping base: any ExpertDisk, model: DiskModel, clock: any ExpertStoreClock = MonotonicClock()) {
        self.base = base
        self.model = model
        self.clock = clock
    }

    /// Reads through `base`, then waits for the simulated completion time.
    public func read(_ request: DiskRead, into buffer: UnsafeMutableRawPointer) throws -> Int {
        let deadline = reserve(bytes: request.length)
        let count = try base.read(request, into: buffer)
        clock.sleep(until: deadline)
        return count
    }

    /// Waits as long as reading `bytes` from the simulated device would take.
    public func charge(bytes: Int, file: Int) {
        clock.sleep(until: reserve(bytes: bytes))
    }

    /// Books a transfer of `bytes` on the channel; returns when it completes (ns on `clock`).
    private func reserve(bytes: Int) -> UInt64 {
        let now = clock.now
        let latency = UInt64(model.latency * 1e9), transfer = UInt64(Double(bytes) / model.bandwidth * 1e9)
        return lock.withLock {
            let start = max(now + latency, channelFreeAt)
            channelFreeAt = start + transfer
            return channelFreeAt
        }
    }
}
