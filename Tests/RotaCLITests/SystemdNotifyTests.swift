import Foundation
import RotaSQLite
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `rota run` under systemd: the notify protocol on NOTIFY_SOCKET, and journal log lines with JOURNAL_STREAM.
@Suite("rota run under systemd", .serialized)
struct SystemdNotifyTests {
    @Test func readyReloadingReadyStoppingInOrderWithWatchdogPings() async throws {
        let workspace = try RunCommandTests.Workspace()
        let schedules = workspace.path("schedules")
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
        try "@hourly  tick  exec true\n".write(toFile: schedules + "/a.cron", atomically: true, encoding: .utf8)
        let listener = try NotifyListener(path: workspace.path("notify.sock"))
        defer { listener.close() }
        // WATCHDOG_USEC of 0.2 s: a ping every 0.1 s.
        let rota = try Rota.start(["run", "--db", workspace.db, "--schedules", schedules],
                                  environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000"])
        let pid = rota.process.processIdentifier

        try await listener.wait("READY=1") { announced($0).contains("READY=1") }
        try await listener.wait("WATCHDOG=1") { announced($0).contains("WATCHDOG=1") }
        kill(pid, SIGHUP)
        try await listener.wait("RELOADING=1, then READY=1") { announced($0).filter { $0 == "READY=1" }.count == 2 }
        // A reload that the files refuse: the last good schedules go on, and systemd hears READY=1 all the same.
        try "61 * * * *  bad  exec true\n".write(toFile: schedules + "/b.cron", atomically: true, encoding: .utf8)
        kill(pid, SIGHUP)
        try await listener.wait("RELOADING=1, then READY=1 again") { announced($0).filter { $0 == "READY=1" }.count == 3 }
        kill(pid, SIGTERM)
        try await listener.wait("STOPPING=1") { announced($0).contains("STOPPING=1") }
        let result = try await rota.finish(timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")

        let messages = listener.messages
        let events = announced(messages).filter { $0 != "WATCHDOG=1" }
        #expect(events == ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], "\(messages)")
        #expect(messages.contains("WATCHDOG=1"), "\(messages)")
        // Each message is KEY=value lines: a STATUS= beside READY=1, a MONOTONIC_USEC= beside RELOADING=1.
        let first = try #require(messages.first { $0.hasPrefix("READY=1") })
        #expect(first.contains("\nSTATUS=serving queue default (4 slots), 1 schedule"), "\(first)")
        let reloading = try #require(messages.first { $0.hasPrefix("RELOADING=1") })
        #expect(reloading.range(of: #"\nMONOTONIC_USEC=[0-9]+"#, options: .regularExpression) != nil, "\(reloading)")
        let readies = messages.filter { $0.hasPrefix("READY=1") }
        #expect(readies[1].contains("; schedules reloaded"), "\(readies)")
        #expect(readies[2].contains("; schedules not reloaded (errors); the last good ones stay"), "\(readies)")
        let stopping = try #require(messages.first { $0.hasPrefix("STOPPING=1") })
        #expect(stopping.contains("\nSTATUS=draining"), "\(stopping)")
    }

    /// Without --schedules a SIGHUP reloads nothing and does not end the process (systemctl reload is harmless).
    @Test func withoutSchedulesSighupIsARoundOfReloadingAndReady() async throws {
        let workspace = try RunCommandTests.Workspace()
        let listener = try NotifyListener(path: workspace.path("notify.sock"))
        defer { listener.close() }
        let rota = try Rota.start(["run", "--db", workspace.db], environment: ["NOTIFY_SOCKET": listener.path])
        try await listener.wait("READY=1") { announced($0).contains("READY=1") }
        kill(rota.process.processIdentifier, SIGHUP)
        try await listener.wait("READY=1 after the SIGHUP") { announced($0).filter { $0 == "READY=1" }.count == 2 }
        #expect(rota.process.isRunning)
        kill(rota.process.processIdentifier, SIGTERM)
        let result = try await rota.finish(timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")
        #expect(announced(listener.messages) == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"], "\(listener.messages)")
        #expect(listener.messages[2].contains("nothing to reload (no --schedules)"), "\(listener.messages)")
    }

    /// The watchdog is fed only while the scheduler's loop turns: a loop stuck in a store call (here, waiting
    /// for a write lock another process holds) gets no WATCHDOG=1, and systemd would restart it.
    @Test func theWatchdogIsNotFedWhileTheSchedulersLoopIsStuck() async throws {
        let workspace = try RunCommandTests.Workspace()
        let listener = try NotifyListener(path: workspace.path("notify.sock"))
        defer { listener.close() }
        // WATCHDOG_USEC of 1 s: a ping every 0.5 s while the loop turned within 0.5 s (it heartbeats every 0.25 s).
        let rota = try Rota.start(["run", "--db", workspace.db],
                                  environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"])
        try await listener.wait("READY=1") { announced($0).contains("READY=1") }
        let ready = listener.messages.count
        try await listener.wait("WATCHDOG=1 while serving") { announced(Array($0.dropFirst(ready))).contains("WATCHDOG=1") }

        // Another process takes the write lock: the scheduler's next heartbeat waits in SQLite's busy handler (5 s).
        let blocker = try Connection(path: workspace.db, options: .init(mode: .readWrite, quickCheck: false))
        try blocker.execute("BEGIN EXCLUSIVE")
        let stuck = try await waitForText(in: rota.err) { $0.contains("no watchdog ping: the scheduler's loop has not turned for") }
        try blocker.execute("COMMIT")
        #expect(stuck, "rota never held the watchdog back")
        let held = listener.messages.count
        try await listener.wait("WATCHDOG=1 once the loop turns again") { announced(Array($0.dropFirst(held))).contains("WATCHDOG=1") }

        kill(rota.process.processIdentifier, SIGTERM)
        let result = try await rota.finish(timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")
    }

    /// Waits (looking every 10 ms, at most 120 s) until the file's text satisfies `predicate`.
    private func waitForText(in file: URL, _ predicate: (String) -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if predicate((try? String(contentsOf: file, encoding: .utf8)) ?? "") { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test func anAbstractSocketNameStartingWithAtIsUsed() async throws {
        let workspace = try RunCommandTests.Workspace()
        let listener = try NotifyListener(path: "@rota-test-\(UUID().uuidString)")
        defer { listener.close() }
        let result = try await Rota.run(["run", "--db", workspace.db, "--until-empty"],
                                        environment: ["NOTIFY_SOCKET": listener.path], timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")
        try await listener.wait("STOPPING=1") { announced($0).contains("STOPPING=1") }
        #expect(announced(listener.messages) == ["READY=1", "STOPPING=1"], "\(listener.messages)")
    }

    @Test func noWatchdogPingsWhenWatchdogPidIsAnotherProcess() async throws {
        let workspace = try RunCommandTests.Workspace()
        let listener = try NotifyListener(path: workspace.path("notify.sock"))
        defer { listener.close() }
        let result = try await Rota.run(["run", "--db", workspace.db, "--until-empty"], environment: [
            "NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000", "WATCHDOG_PID": "1",
        ], timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")
        try await listener.wait("STOPPING=1") { announced($0).contains("STOPPING=1") }
        #expect(announced(listener.messages) == ["READY=1", "STOPPING=1"], "\(listener.messages)")
    }

    @Test func underTheJournalLogLinesCarryAPriorityAndNoTimestamp() async throws {
        let workspace = try RunCommandTests.Workspace()
        // JOURNAL_STREAM names standard error's device and inode, as systemd sets it.
        let journal = try runWithStderrFile(["run", "--db", workspace.db, "--until-empty", "--log-level", "debug"],
                                            workspace: workspace, journal: true)
        #expect(journal.status == 0, "\(journal.stderr)")
        let lines = journal.stderr.split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { $0.range(of: #"^<[2-7]>(debug|info|notice|warning|error|critical) rota\."#, options: .regularExpression) != nil },
                "\(journal.stderr)")
        #expect(journal.stderr.range(of: #"\d{4}-\d\d-\d\dT\d\d:\d\d"#, options: .regularExpression) == nil, "\(journal.stderr)")
        // A JOURNAL_STREAM that is not standard error (inherited by a redirected child) changes nothing.
        let redirected = try runWithStderrFile(["run", "--db", workspace.db, "--until-empty", "--log-level", "debug"],
                                               workspace: workspace, journal: false)
        #expect(redirected.status == 0, "\(redirected.stderr)")
        #expect(redirected.stderr.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d"#, options: [.regularExpression]) != nil, "\(redirected.stderr)")
        #expect(!redirected.stderr.contains("<7>"), "\(redirected.stderr)")
    }

    /// Runs `rota ARGS…` with standard error in a file and JOURNAL_STREAM set to that file's `DEVICE:INODE`
    /// (`journal`) or to another file's; returns the exit status and what it wrote on standard error.
    private func runWithStderrFile(_ arguments: [String], workspace: RunCommandTests.Workspace,
                                   journal: Bool) throws -> (status: Int32, stderr: String) {
        let path = workspace.path("stderr-\(UUID().uuidString.prefix(6))")
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let other = workspace.path("other-\(UUID().uuidString.prefix(6))")
        _ = FileManager.default.createFile(atPath: other, contents: nil)
        var status = stat()
        guard stat(journal ? path : other, &status) == 0 else { throw TestFailure("stat \(path) failed") }
        let process = Process()
        process.executableURL = Rota.binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ROTA_DB"] = nil
        environment["JOURNAL_STREAM"] = "\(status.st_dev):\(status.st_ino)"
        process.environment = environment
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }
}

/// The first line of each message (`READY=1`, `WATCHDOG=1`, …): what it announces.
private func announced(_ messages: [String]) -> [String] {
    messages.map { $0.split(separator: "\n").first.map(String.init) ?? "" }
}

/// A unix datagram socket bound where NOTIFY_SOCKET points (a path, or `@name` in the abstract namespace),
/// read by a thread of its own with a blocking `recv` (off Swift's cooperative pool); waiters are resumed
/// when a message arrives that satisfies them.
final class NotifyListener: @unchecked Sendable {
    let path: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var waiters: [(predicate: ([String]) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    private var closed = false

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw TestFailure("bind \(path): \(reason)")
        }
        // A safety net only (a rota that never writes fails the test instead of hanging it): recv gives up
        // after 120 s without a message.
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in readLoop() }
        thread.name = "notify-listener"
        thread.start()
    }

    /// Every message received so far, in order.
    var messages: [String] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Waits until the messages received satisfy `predicate` (or the socket gives up: then it fails).
    func wait(_ what: String, until predicate: @escaping ([String]) -> Bool) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if predicate(received) || closed {
                lock.unlock()
                continuation.resume()
                return
            }
            waiters.append((predicate, continuation))
            lock.unlock()
        }
        let messages = self.messages
        guard predicate(messages) else { throw TestFailure("no \(what) came; received \(messages)") }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            lock.lock()
            if count <= 0 || closed {
                closed = true
                let waiting = waiters
                waiters = []
                lock.unlock()
                for waiter in waiting { waiter.continuation.resume() }
                Glibc.close(descriptor)
                return
            }
            received.append(String(decoding: buffer[0..<count], as: UTF8.self))
            var ready: [CheckedContinuation<Void, Never>] = []
            waiters.removeAll { waiter in
                guard waiter.predicate(received) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            lock.unlock()
            for continuation in ready { continuation.resume() }
        }
    }

    /// Stops reading (the blocked recv returns) and removes the socket file.
    func close() {
        lock.lock()
        closed = true
        lock.unlock()
        shutdown(descriptor, Int32(SHUT_RDWR))
        if !path.hasPrefix("@") { unlink(path) }
    }
}
