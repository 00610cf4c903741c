import Foundation
import Testing

/// The admin commands while a real `rota run` processes tasks on the same file. Enabled once the binary
/// has `rota run` (the scheduler branch); until then ``ConcurrentWriterTests`` simulates the writer.
@Suite("admin commands while rota run processes tasks", .enabled(if: Rota.hasRunCommand))
struct RunCommandIntegrationTests {
    @Test func queriesRetryAndCancelWorkWhileRotaRunRuns() async throws {
        let db = try TempDatabase()
        var quick: [Int] = []
        for _ in 0..<20 { quick.append(try await db.enqueue("--exec", "--max-attempts", "1", "--", "true")) }
        let failing = try await db.enqueue("--exec", "--max-attempts", "1", "--", "false")
        let sleeper = try await db.enqueue("--exec", "--", "sleep", "3600")  // still running when cancelled, however slow the test
        let waiting = try await db.enqueue("--exec", "--in", "1h", "--", "true")
        let run = try Rota.start(["run", "--db", db.path, "--concurrency", "4", "--durability", "normal", "--grace", "1"])
        defer { if run.process.isRunning { kill(run.process.processIdentifier, SIGKILL) } }

        // While it runs: every query answers, and sees its progress.
        let worker = try await waitFor(timeout: .seconds(120)) { () -> [String: Any]? in
            let list = try await db.rota("list", "--json")
            #expect(list.status == 0, "\(list)")
            let stats = try await db.rota("stats", "--json")
            #expect(stats.status == 0, "\(stats)")
            return try await db.rota("workers", "--json").objects().first { $0["status"] as? String == "live" }
        }
        #expect((worker["task_names"] as? [String])?.contains("exec") == true)
        _ = try await waitFor(timeout: .seconds(120)) { () -> Bool? in
            let tasks = try await db.rota("list", "--name", "exec", "--all", "--json").objects()
            let done = tasks.filter { quick.contains($0["id"] as? Int ?? 0) && $0["state"] as? String == "succeeded" }
            return done.count == quick.count ? true : nil
        }
        _ = try await waitFor(timeout: .seconds(120)) { try await db.state(failing) == "dead" ? true : nil }
        _ = try await waitFor(timeout: .seconds(120)) { try await db.state(sleeper) == "running" ? true : nil }

        let stats = try await db.rota("stats", "--json").object()
        #expect((stats["unhandled_names"] as? [[String: Any]])?.isEmpty == true, "a live worker handles exec")
        // The 21 finished attempts count in the last hour (the last minute would depend on how long this took).
        #expect((stats["throughput"] as? [String: Int])?["last_hour"] ?? 0 >= 21)
        #expect(!(try await db.rota("stats").stdout.contains("no live worker handles exec")))

        // Retry the dead task: it runs again and fails again, with both attempts in its log.
        #expect(try await db.rota("retry", String(failing)).status == 0)
        let log = try await waitFor(timeout: .seconds(120)) { () -> [[String: Any]]? in
            let task = try await db.task(failing)
            let log = task["attempts_log"] as? [[String: Any]] ?? []
            return task["state"] as? String == "dead" && log.count == 2 ? log : nil
        }
        #expect(log.allSatisfy { $0["outcome"] as? String == "failed" })

        // Refused operations change nothing, even while the scheduler writes.
        #expect(try await db.rota("retry", String(quick[0])).status == 1)
        #expect(try await db.state(quick[0]) == "succeeded")
        #expect(try await db.rota("cancel", String(quick[1])).status == 1)

        // Cancel the running sleeper: its worker stops it.
        let cancel = try await db.rota("cancel", String(sleeper))
        #expect(cancel.status == 0)
        #expect(cancel.stdout.contains("asked to stop"))
        _ = try await waitFor(timeout: .seconds(120)) { try await db.state(sleeper) == "cancelled" ? true : nil }
        #expect(try await db.rota("cancel", String(waiting)).status == 0)
        #expect(try await db.state(waiting) == "cancelled")

        kill(run.process.processIdentifier, SIGTERM)
        let finished = try await run.finish()
        #expect(finished.status == 0, "\(finished)")
        let workers = try await db.rota("workers", "--json").objects()
        #expect(workers.allSatisfy { $0["status"] as? String == "stopped" })
        #expect(try await db.rota("check").status == 0)
    }
}

extension Rota {
    /// True when the built binary has `rota run`.
    static let hasRunCommand: Bool = {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--help"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        let help = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return help.contains("\n  run ")
    }()
}
