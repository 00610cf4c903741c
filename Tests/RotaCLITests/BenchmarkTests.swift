import Foundation
import Testing

/// `rota list` and `rota stats` on a 1,000,000-task database. Opt-in: `ROTA_BENCH=1 swift test --filter Benchmark`
/// (`ROTA_BENCH_TASKS` changes the size; `ROTA_BENCH_DB=path` keeps and reuses the database).
/// Times are wall-clock for the whole `rota` process (launch included), the median of five runs; it prints them
/// and checks only that every command succeeds (no timing assertion: the machines are shared and noisy).
/// `ROTA_BINARY=path` times another build (e.g. `swift build -c release`).
@Suite("benchmark", .enabled(if: ProcessInfo.processInfo.environment["ROTA_BENCH"] == "1"))
struct BenchmarkTests {
    @Test func listAndStatsOnAMillionTasks() async throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["ROTA_BENCH_TASKS"].flatMap { Int($0) } ?? 1_000_000
        let temp = try TempDatabase()
        let path = env["ROTA_BENCH_DB"] ?? temp.path
        if !FileManager.default.fileExists(atPath: path) {
            let start = ContinuousClock.now
            let populate = try await Rota.run(["_dev", "populate", "--count", String(count), "--db", path], timeout: .seconds(1800))
            #expect(populate.status == 0, "\(populate)")
            print("benchmark: populated \(count) tasks in \(ContinuousClock.now - start): \(populate.stdout)", terminator: "")
        }
        let commands: [[String]] = [
            ["list"],
            ["list", "--json"],
            ["list", "--state", "dead"],
            ["list", "--state", "scheduled", "--state", "running"],
            ["list", "--queue", "q3"],
            ["list", "--name", "bench.7"],
            ["list", "--state", "dead", "--queue", "q1", "--name", "bench.11"],
            ["list", "--since", "1h"],
            // Worst cases: a filter no index serves, matching nothing, reads the whole table.
            ["list", "--name", "no.such.name"],
            ["list", "--queue", "no-such-queue"],
            ["list", "--since", "1s"],
            ["list", "--limit", "10000", "--json"],
            ["stats"],
            ["stats", "--json"],
            ["show", "500000"],
            ["workers"],
            ["--version"],
        ]
        for command in commands {
            var times: [Duration] = []
            for _ in 0..<5 {
                let start = ContinuousClock.now
                let result = try await Rota.run(command + (command == ["--version"] ? [] : ["--db", path]), environment: ["COLUMNS": "120"])
                times.append(ContinuousClock.now - start)
                #expect(result.status == 0, "\(command): \(result)")
            }
            let median = times.sorted()[2]
            let label = "rota " + command.joined(separator: " ")
            print("benchmark: \(label): median \(median), max \(times.max()!)")
        }
    }
}

/// `rota bench --db postgres://...` in quick mode on the server `ROTA_TEST_POSTGRES_URL` names (scripts/test
/// starts a throwaway one): every group runs in schemas of its own, prints the keys of the SQLite run (plus
/// e2e_noop_3sched) and drops its schemas. It checks the keys and that the figures are numbers, never a
/// figure's size (the machines are shared and noisy).
@Suite("benchmark on PostgreSQL")
struct PostgresBenchmarkTests {
    static let url = ProcessInfo.processInfo.environment["ROTA_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }

    @Test(.enabled(if: url != nil, "needs a PostgreSQL server: ROTA_TEST_POSTGRES_URL (scripts/test starts one)"))
    func quickRunPrintsTheKeys() async throws {
        let url = try #require(Self.url)
        // Small counts: the keys are what is checked, and the test build is a debug build.
        let result = try await Rota.run(["bench", "--db", url, "--quick", "--tasks", "1000", "--backlog", "5000"],
                                        timeout: .seconds(600))
        #expect(result.status == 0, "\(result)")
        var values: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        let numeric = ["enqueue_one", "enqueue_bulk", "e2e_noop", "e2e_cpu_us_per_task", "e2e_noop_2sched", "e2e_noop_3sched",
                       "dispatch_p50_ms", "dispatch_p99_ms", "dispatch_max_ms",
                       "cli_dispatch_p50_ms", "cli_dispatch_p99_ms", "cli_dispatch_max_ms", "cli_dispatch_samples",
                       "idle_cpu_pct", "claim_empty", "claim_backlog", "backlog_claim_ratio", "backlog_e2e", "peak_rss_mib"]
        for key in numeric {
            #expect(values[key].flatMap(Double.init) != nil, "\(key) missing or not a number in:\n\(result.stdout)")
        }
        #expect(values["store"] == "postgres")
        #expect(values.keys.allSatisfy { !$0.hasSuffix("_full") }, "no _full keys on PostgreSQL: \(values.keys.sorted())")
    }
}
