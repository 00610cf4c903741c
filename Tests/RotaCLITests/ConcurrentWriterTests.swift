import Foundation
import Testing

/// The admin commands against a database another process is writing to (a simulated worker, `rota _dev churn`,
/// enqueuing, claiming and completing tasks in short IMMEDIATE transactions as fast as it can).
@Suite("admin commands while another process writes")
struct ConcurrentWriterTests {
    @Test func queriesAndOperationsWorkWhileAWorkerWrites() throws {
        let db = try TempDatabase.seeded()
        let churn = try Rota.start(["_dev", "churn", "--seconds", "6", "--batch", "20", "--db", db.path])
        defer { if churn.process.isRunning { churn.process.terminate() } }
        // Wait until the worker is writing.
        _ = try waitFor(timeout: .seconds(20)) { () -> Bool? in
            ((try db.rota("stats", "--json").object()["states"] as? [String: Int])?["succeeded"] ?? 0) > 70 ? true : nil
        }
        var rounds = 0
        var lastTotal = 0
        var sawGrowth = false
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline && churn.process.isRunning {
            rounds += 1
            let list = try db.rota("list", "--json", "--limit", "200")
            #expect(list.status == 0, "\(list)")
            let tasks = try list.objects()
            #expect(tasks.count == 200)
            let ids = tasks.compactMap { $0["id"] as? Int }
            #expect(ids == ids.sorted(by: >), "newest first")

            let stats = try db.rota("stats", "--json")
            #expect(stats.status == 0, "\(stats)")
            let total = try stats.object()["total"] as? Int ?? 0
            if lastTotal > 0, total > lastTotal { sawGrowth = true }
            lastTotal = total

            let show = try db.rota("show", String(ids[ids.count / 2]), "--json")
            #expect(show.status == 0, "\(show)")

            // Writes from the CLI interleave with the worker's: retry a dead seeded task, cancel a scheduled one.
            if rounds == 1 {
                #expect(try db.rota("retry", "72").status == 0)
                #expect(try db.rota("cancel", "88").status == 0)
                #expect(try db.rota("enqueue", "cli.task", "--queue", "cli").status == 0)
            }
            #expect(try db.rota("workers", "--json").status == 0)
            #expect(try db.rota("list", "--state", "dead", "--all", "--json").status == 0)
        }
        let finished = churn.wait()
        #expect(finished.status == 0, "\(finished)")
        #expect(rounds >= 2)
        #expect(sawGrowth, "the worker's writes are visible to later reads")
        #expect(try db.state(72) == "scheduled")
        #expect(try db.state(88) == "cancelled")
        #expect(try db.rota("check").status == 0)
    }

    @Test func twoWritersAndAPurgeKeepTheDatabaseSound() throws {
        let db = try TempDatabase()
        #expect(try db.rota("migrate").status == 0)
        let first = try Rota.start(["_dev", "churn", "--seconds", "3", "--worker", "w1", "--db", db.path])
        let second = try Rota.start(["_dev", "churn", "--seconds", "3", "--worker", "w2", "--db", db.path])
        var purges = 0
        while first.process.isRunning || second.process.isRunning {
            let purge = try db.rota("purge", "--older-than", "0s", "--state", "succeeded")
            #expect(purge.status == 0, "\(purge)")
            purges += 1
            usleep(100_000)
        }
        #expect(first.wait().status == 0)
        #expect(second.wait().status == 0)
        #expect(purges > 3)
        #expect(try db.rota("check").status == 0)
        let workers = try db.rota("workers", "--json").objects()
        #expect(Set(workers.compactMap { $0["id"] as? String }) == ["w1", "w2"])
    }
}
