import Foundation
import Testing

/// The admin commands while a real `rota run` processes tasks on the same file. Enabled once the binary
/// has `rota run` (the scheduler branch); until then ``ConcurrentWriterTests`` simulates the writer.
@Suite("admin commands while rota run processes tasks", .enabled(if: Rota.hasRunCommand))
struct RunCommandIntegrationTests {
    @Test func queriesRetryAndCancelWorkWhileRotaRunRuns() throws {
        let db = try TempDatabase()
        let quick = try (0..<20).map { _ in try db.enqueue("--exec", "--max-attempts", "1", "--", "true") }
        let failing = try db.enqueue("--exec", "--max-attempts", "1", "--", "false")
        let sleeper = try db.enqueue("--exec", "--", "sleep", "30")
        let waiting = try db.enqueue("--exec", "--in", "1h", "--", "true")
        let run = try Rota.start(["run", "--db", db.path, "--concurrency", "4", "--durability", "normal", "--grace", "1"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }

        // While it runs: every query answers, and sees its progress.
        let worker = try waitFor(timeout: .seconds(30)) { () -> [String: Any]? in
            #expect(try db.rota("list", "--json").status == 0)
            #expect(try db.rota("stats", "--json").status == 0)
            return try db.rota("workers", "--json").objects().first { $0["status"] as? String == "live" }
        }
        #expect((worker["task_names"] as? [String])?.contains("exec") == true)
        _ = try waitFor(timeout: .seconds(60)) { () -> Bool? in
            let states = quick.compactMap { try? db.state($0) }
            return states.count == quick.count && states.allSatisfy { $0 == "succeeded" } ? true : nil
        }
        _ = try waitFor(timeout: .seconds(30)) { try db.state(failing) == "dead" ? true : nil }
        _ = try waitFor(timeout: .seconds(30)) { try db.state(sleeper) == "running" ? true : nil }

        let stats = try db.rota("stats", "--json").object()
        #expect((stats["unhandled_names"] as? [[String: Any]])?.isEmpty == true, "a live worker handles exec")
        #expect((stats["throughput"] as? [String: Int])?["last_minute"] ?? 0 >= 21)
        #expect(!(try db.rota("stats").stdout.contains("no live worker handles exec")))

        // Retry the dead task: it runs again and fails again, with both attempts in its log.
        #expect(try db.rota("retry", String(failing)).status == 0)
        let log = try waitFor(timeout: .seconds(30)) { () -> [[String: Any]]? in
            let task = try db.task(failing)
            let log = task["attempts_log"] as? [[String: Any]] ?? []
            return task["state"] as? String == "dead" && log.count == 2 ? log : nil
        }
        #expect(log.allSatisfy { $0["outcome"] as? String == "failed" })

        // Refused operations change nothing, even while the scheduler writes.
        #expect(try db.rota("retry", String(quick[0])).status == 1)
        #expect(try db.state(quick[0]) == "succeeded")
        #expect(try db.rota("cancel", String(quick[1])).status == 1)

        // Cancel the running sleeper: its worker stops it.
        let cancel = try db.rota("cancel", String(sleeper))
        #expect(cancel.status == 0)
        #expect(cancel.stdout.contains("asked to stop"))
        _ = try waitFor(timeout: .seconds(60)) { try db.state(sleeper) == "cancelled" ? true : nil }
        #expect(try db.rota("cancel", String(waiting)).status == 0)
        #expect(try db.state(waiting) == "cancelled")

        kill(run.process.processIdentifier, SIGTERM)
        let finished = run.wait()
        #expect(finished.status == 0, "\(finished)")
        let workers = try db.rota("workers", "--json").objects()
        #expect(workers.allSatisfy { $0["status"] as? String == "stopped" })
        #expect(try db.rota("check").status == 0)
    }
}

extension Rota {
    /// True when the built binary has `rota run`.
    static let hasRunCommand: Bool = (try? run(["--help"]))?.stdout.contains("\n  run ") == true
}
