import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A child process run to its end, with what the kernel accounted for it: its exit status, its
/// peak resident set size and its wall time.
public struct MeasuredProcess: Sendable {
    /// The exit status; a process killed by a signal reads 128 + the signal number.
    public var status: Int32
    /// The child's peak resident memory in bytes.
    public var peakResidentBytes: Int
    /// Wall time from the spawn to the end.
    public var seconds: Double
    /// Standard output and standard error, interleaved as written.
    public var output: String

    /// Spawns `executable` with `arguments` (`posix_spawn`, the parent's environment), with
    /// standard output and error going to one temporary file, and waits for it with `wait4`.
    /// On Linux the peak is the child's `VmHWM` in `/proc/PID/status`, read every 2 ms until it
    /// exits: Linux folds the parent's peak into a spawned child's `ru_maxrss` when the child
    /// calls `exec`, so that figure would be the larger of the two. Elsewhere it is `ru_maxrss`.
    public static func run(_ executable: URL, arguments: [String]) throws -> MeasuredProcess {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("chronos-child-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        #if canImport(Glibc)
            var actions = posix_spawn_file_actions_t()
        #else
            var actions: posix_spawn_file_actions_t? = nil
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let started = Date()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw BenchError.failed("cannot start \(executable.path): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        var peak = 0
        while true {
            let waited = wait4(pid, &status, WNOHANG, &usage)
            if waited == pid { break }
            if waited < 0 {
                guard errno == EINTR else { throw BenchError.failed("waiting for \(executable.path): \(String(cString: strerror(errno)))") }
                continue
            }
            #if os(Linux)
                if let mark = highWaterMark(pid) { peak = max(peak, mark) }
            #endif
            usleep(2000)
        }
        let seconds = Date().timeIntervalSince(started)
        #if !os(Linux)
            peak = Int(usage.ru_maxrss)  // bytes on Darwin
        #endif
        let signal = status & 0x7f
        let exit = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return MeasuredProcess(status: exit, peakResidentBytes: peak, seconds: seconds, output: output)
    }

    /// The `VmHWM` line of `/proc/PID/status` (the peak resident set of the process's current
    /// memory map) in bytes, or nil once the process has exited.
    static func highWaterMark(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }
}
