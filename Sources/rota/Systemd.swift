import Dispatch
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol (`sd_notify(3)`), for `rota run` under a `Type=notify` unit: one datagram per
/// message to the unix socket that `NOTIFY_SOCKET` names (a path, or an abstract name written `@name`).
/// Without `NOTIFY_SOCKET` every call does nothing.
final class SystemdNotifier: Sendable {
    /// The socket's address, or `nil` when not run by systemd.
    private let address: String?
    /// Half of `WATCHDOG_USEC` when the watchdog is on for this process.
    let watchdogInterval: Duration?
    /// Whether `STOPPING=1` was sent (it is sent once).
    private let stopped = Mutex(false)
    /// What the watchdog asks before each `WATCHDOG=1`: `nil` (healthy) or why not to ping.
    private let healthCheck = Mutex<(@Sendable () -> String?)?>(nil)
    /// Whether the last watchdog turn held its ping back (to log a change once).
    private let holding = Mutex(false)

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let socket = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        address = socket
        // The watchdog is ours when WATCHDOG_PID is unset or is our pid (it may be meant for a parent).
        if socket != nil, let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0,
           environment["WATCHDOG_PID"].map({ Int32($0) == getpid() }) ?? true {
            watchdogInterval = .microseconds(usec / 2)
        } else {
            watchdogInterval = nil
        }
    }

    /// Whether `NOTIFY_SOCKET` was set.
    var isActive: Bool { address != nil }

    /// Sends `message` (newline-separated `KEY=value` lines, e.g. `READY=1`) in one datagram.
    /// - Returns: whether it was sent (always `false` without `NOTIFY_SOCKET`).
    @discardableResult
    func notify(_ message: String) -> Bool {
        guard let address else { return false }
        return Self.send(message, to: address)
    }

    /// `READY=1`, with a `STATUS=` line.
    func ready(status: String) { notify("READY=1\nSTATUS=\(status)") }

    /// `RELOADING=1` with the monotonic clock's reading, as systemd 253's reload protocol asks.
    func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify("RELOADING=1\nSTATUS=reloading the schedules\nMONOTONIC_USEC=\(usec)")
    }

    /// `STOPPING=1`, with a `STATUS=` line; only the first call sends it.
    func stopping(status: String) {
        guard !stopped.withLock({ sent in defer { sent = true }; return sent }) else { return }
        notify("STOPPING=1\nSTATUS=\(status)")
    }

    /// From now on each `WATCHDOG=1` is sent only while `check` returns `nil` (healthy); a reason not to
    /// ping is logged once, when it starts.
    func watchdogCheck(_ check: @escaping @Sendable () -> String?) {
        healthCheck.withLock { $0 = check }
    }

    /// Sends `WATCHDOG=1` every ``watchdogInterval`` (while the ``watchdogCheck(_:)`` passes) until the
    /// returned timer is cancelled; `nil` when the watchdog is off.
    func startWatchdog(logger: Logger) -> (any DispatchSourceTimer)? {
        guard let interval = watchdogInterval else { return nil }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "rota.watchdog"))
        let nanoseconds = max(1_000_000, Int(interval.components.seconds) * 1_000_000_000
            + Int(interval.components.attoseconds / 1_000_000_000))
        timer.schedule(deadline: .now(), repeating: .nanoseconds(nanoseconds), leeway: .nanoseconds(nanoseconds / 10))
        timer.setEventHandler { [self] in
            let problem = healthCheck.withLock { $0 }?()
            let wasHolding = holding.withLock { held in defer { held = problem != nil }; return held }
            if let problem {
                if !wasHolding { logger.error("no watchdog ping: \(problem)") }
                return
            }
            notify("WATCHDOG=1")
        }
        timer.resume()
        return timer
    }

    /// One datagram to a unix socket path, or to an abstract socket (`@name`).
    static func send(_ message: String, to path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace: a leading NUL, no trailing one
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (bytes[0] == 0 ? 0 : 1))
        let data = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                data.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), socketAddress, length) }
            }
        }
        return sent == data.count
    }
}

/// Log lines for the journal: `<N>` (the syslog priority journald reads) then level, label, message and
/// metadata, without a timestamp (journald stamps every line itself).
struct JournalLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let explicit = event.metadata { all.merge(explicit) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        var text = "<\(Self.priority(event.level))>\(event.level) \(label): \(event.message)"
        if !all.isEmpty { text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        text = text.replacingOccurrences(of: "\n", with: " ") + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The syslog priority of a level (`sd-daemon.h`: 7 debug … 2 critical).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Whether standard error is the journal stream systemd set up: `JOURNAL_STREAM` (`DEVICE:INODE`)
    /// names the file standard error is (a command whose stderr was redirected inherits the variable).
    static func stderrIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}
