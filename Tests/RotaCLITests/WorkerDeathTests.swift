import Foundation
import Testing

/// Worker deaths do not eat a task's attempts, and a task that kills its worker every time is found (it
/// runs alone once suspected) and stopped by its poison limit, while the tasks beside it complete.
@Suite(.serialized) struct WorkerDeathTests {
    /// Waits, without blocking a thread, until `file` has at least `lines` lines (a hang guard bounds it).
    private func waitForLines(_ file: String, _ lines: Int, while running: Rota.Running) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            if text.split(separator: "\n").count >= lines { return }
            if !running.process.isRunning {
                throw TestFailure("rota run exited before line \(lines): \(try await running.finish())")
            }
            if ContinuousClock.now > deadline { throw TestFailure("line \(lines) of \(file) never came") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func aTaskWhoseSchedulerIsKilledThreeTimesInARowStillSucceeds() async throws {
        let db = try TempDatabase()
        let marks = db.directory.appendingPathComponent("starts.txt").path
        // Each start appends a line; the first three starts then hang until their scheduler is killed.
        let script = #"echo start >> "$1"; [ "$(wc -l < "$1")" -ge 4 ] || exec sleep 600"#
        let id = try await db.enqueue("--exec", "--max-attempts", "3", "--", "sh", "-c", script, "sh", marks)
        for kill in 1...3 {
            let run = try Rota.start(db.withDatabase(["run", "--durability", "normal", "--poll-ms", "20"]))
            try await waitForLines(marks, kill, while: run)
            Foundation.kill(run.process.processIdentifier, SIGKILL)
            _ = try await run.finish()
        }
        // The next start releases the dead schedulers' leases at once and runs it a fourth time.
        let finish = try await db.rota("run", "--until-empty", "--durability", "normal", "--poll-ms", "20")
        #expect(finish.status == 0, "\(finish)")
        let task = try await db.task(id)
        #expect(task["state"] as? String == "succeeded")
        #expect(task["attempts"] as? Int == 4)
        #expect(task["losses"] as? Int == 3)
        #expect(task["solo_losses"] as? Int == 0)
        #expect(task["max_attempts"] as? Int == 6)  // each lost attempt was given back
        let show = try await db.rota("show", String(id))
        #expect(show.stdout.contains("3 with their worker"), "\(show.stdout)")
    }

    @Test func anInProcessHandlerThatCrashesItsWorkerEveryTimeEndsDeadAndTheOthersComplete() async throws {
        let db = try TempDatabase()
        let crash = try await db.enqueue("crash", "--max-attempts", "5")
        var fine: [Int] = []
        for _ in 1...6 { fine.append(try await db.enqueue("ok")) }
        var runs = 0, crashed = 0
        while runs < 15 {
            runs += 1
            let result = try await db.rota("_dev", "crashy", "--concurrency", "3")
            if result.status == 0 { break }
            crashed += 1
        }
        let task = try await db.task(crash)
        #expect(task["state"] as? String == "dead", "after \(runs) runs: \(task)")
        #expect((task["last_error"] as? String)?.contains("poison") == true, "\(task)")
        #expect(task["solo_losses"] as? Int == 2)
        #expect(task["poison_limit"] as? Int == 2)
        // Two losses beside other tasks (not charged) make it a suspect; then it runs alone, and two losses
        // alone reach its poison limit.
        #expect(task["losses"] as? Int == crashed)
        #expect(crashed == 4, "crashed \(crashed) times")
        for id in fine {
            let ok = try await db.task(id)
            #expect(ok["state"] as? String == "succeeded", "\(ok)")
            #expect(ok["solo_losses"] as? Int == 0, "an innocent task is never charged: \(ok)")
        }
    }

    @Test func thePoisonLimitIsSetAtEnqueueAndABadOneIsRefused() async throws {
        let db = try TempDatabase()
        let id = try await db.enqueue("report", "--poison-limit", "5")
        let task = try await db.task(id)
        #expect(task["poison_limit"] as? Int == 5 && task["losses"] as? Int == 0 && task["solo_losses"] as? Int == 0)
        let bad = try await db.rota("enqueue", "report", "--poison-limit", "0")
        #expect(bad.status == 2 && bad.stderr.contains("--poison-limit"), "\(bad)")
        #expect(try await db.rota("list", "--json").objects().count == 1)
    }
}
