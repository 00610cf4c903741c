import Foundation
import Testing

/// The admin commands against a database another process is writing to (a simulated worker, `rota _dev churn`,
/// enqueuing, claiming and completing tasks in short IMMEDIATE transactions as fast as it can).
@Suite("admin commands while another process writes")
struct ConcurrentWriterTests {
    @Test func queriesAndOperationsWorkWhileAWorkerWrites() async throws {
        let db = try await TempDatabase.seeded()
        let stop = db.directory.appendingPathComponent("stop").path
        let churn = try Rota.start(["_dev", "churn", "--seconds", "300", "--batch", "20", "--stop-file", stop, "--db", db.path])
        defer { if churn.process.isRunning { churn.process.terminate() } }
        // Wait until the worker is writing.
        _ = try await waitFor(timeout: .seconds(120)) { () -> Bool? in
            ((try await db.rota("stats", "--json").object()["states"] as? [String: Int])?["succeeded"] ?? 0) > 70 ? true : nil
        }
        var rounds = 0
        var lastTotal = 0
        var sawGrowth = false
        let deadline = ContinuousClock.now + .seconds(120)
        while (rounds < 3 || !sawGrowth) && ContinuousClock.now < deadline {
            #expect(churn.process.isRunning)
            rounds += 1
            let list = try await db.rota("list", "--json", "--limit", "200")
            #expect(list.status == 0, "\(list)")
            let tasks = try list.objects()
            #expect(tasks.count == 200)
            let ids = tasks.compactMap { $0["id"] as? Int }
            #expect(ids == ids.sorted(by: >), "newest first")

            let stats = try await db.rota("stats", "--json")
            #expect(stats.status == 0, "\(stats)")
            let total = try stats.object()["total"] as? Int ?? 0
            if lastTotal > 0, total > lastTotal { sawGrowth = true }
            lastTotal = total

            let show = try await db.rota("show", String(ids[ids.count / 2]), "--json")
            #expect(show.status == 0, "\(show)")

            // Writes from the CLI interleave with the worker's: retry a dead seeded task, cancel a scheduled one.
            if rounds == 1 {
                #expect(try await db.rota("retry", "72").status == 0)
                #expect(try await db.rota("cancel", "88").status == 0)
                #expect(try await db.rota("enqueue", "cli.task", "--queue", "cli").status == 0)
            }
            #expect(try await db.rota("workers", "--json").status == 0)
            #expect(try await db.rota("list", "--state", "dead", "--all", "--json").status == 0)
        }
        #expect(rounds >= 3)
        #expect(sawGrowth, "the worker's writes are visible to later reads")
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        let finished = try await churn.finish()
        #expect(finished.status == 0, "\(finished)")
        #expect(try await db.state(72) == "scheduled")
        #expect(try await db.state(88) == "cancelled")
        #expect(try await db.rota("check").status == 0)
    }

    @Test func twoWritersAndAPurgeKeepTheDatabaseSound() async throws {
        let db = try TempDatabase()
        #expect(try await db.rota("migrate").status == 0)
        let stop = db.directory.appendingPathComponent("stop").path
        let first = try Rota.start(["_dev", "churn", "--seconds", "300", "--worker", "w1", "--stop-file", stop, "--db", db.path])
        let second = try Rota.start(["_dev", "churn", "--seconds", "300", "--worker", "w2", "--stop-file", stop, "--db", db.path])
        defer {
            if first.process.isRunning { first.process.terminate() }
            if second.process.isRunning { second.process.terminate() }
        }
        var purged = 0
        var purges = 0
        let deadline = ContinuousClock.now + .seconds(120)
        while (purges < 4 || purged == 0) && ContinuousClock.now < deadline {
            let purge = try await db.rota("purge", "--older-than", "0s", "--state", "succeeded", "--json")
            #expect(purge.status == 0, "\(purge)")
            purged += try purge.object()["purged"] as? Int ?? 0
            purges += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        _ = FileManager.default.createFile(atPath: stop, contents: nil)
        #expect(try await first.finish().status == 0)
        #expect(try await second.finish().status == 0)
        #expect(purges >= 4)
        #expect(purged > 0, "purges deleted what the writers finished")
        #expect(try await db.rota("check").status == 0)
        let workers = try await db.rota("workers", "--json").objects()
        #expect(Set(workers.compactMap { $0["id"] as? String }) == ["w1", "w2"])
        #expect(workers.allSatisfy { $0["status"] as? String == "stopped" })
    }
}
