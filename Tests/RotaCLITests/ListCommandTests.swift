import Foundation
import Testing

/// The fields every task object of `--json` output has (a contract).
let taskFields = ["id", "name", "queue", "state", "priority", "attempts", "max_attempts", "run_at", "created_at",
                  "finished_at", "batch", "schedule", "last_error", "payload", "result"]

@Suite("rota list")
struct ListCommandTests {
    @Test func withNoFilterListsEveryStateNewestFirst() throws {
        let db = try TempDatabase.seeded()
        let tasks = try db.rota("list", "--all", "--json").objects()
        #expect(tasks.count == 100)
        let ids = tasks.compactMap { $0["id"] as? Int }
        #expect(ids == Array((1...100).reversed()))
        #expect(Set(tasks.compactMap { $0["state"] as? String }) == ["scheduled", "running", "succeeded", "dead", "cancelled"])
    }

    @Test func jsonTaskObjectsHaveTheContractFields() throws {
        let db = try TempDatabase.seeded()
        let tasks = try db.rota("list", "--all", "--json").objects()
        for task in tasks {
            for field in taskFields { #expect(task.keys.contains(field), "missing \(field) in \(task)") }
        }
        let succeeded = try #require(tasks.first { $0["id"] as? Int == 1 })
        #expect(succeeded["state"] as? String == "succeeded")
        #expect((succeeded["payload"] as? [String: Any])?["n"] as? Int == 0)
        #expect((succeeded["result"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(instant(succeeded["created_at"]) != nil)
        #expect(instant(succeeded["finished_at"]) != nil)
        #expect((succeeded["run_at"] as? String)?.hasSuffix("Z") == true)
        #expect(succeeded["batch"] is NSNull)
        let dead = try #require(tasks.first { $0["id"] as? Int == 71 })
        #expect(dead["last_error"] as? String == "synthetic failure 70")
        #expect(dead["attempts"] as? Int == 3)
        #expect(dead["max_attempts"] as? Int == 3)
        #expect(dead["result"] is NSNull)
    }

    @Test func jsonStringsAreEscaped() throws {
        let db = try TempDatabase()
        let key = "quote \" backslash \\ newline \n tab \t bell \u{7} é 🎉"
        let payload = #"{"text": "line\nnext \"q\" \u00e9", "list": [1, 2.5, true, null]}"#
        _ = try db.enqueue("weird \"name\"", "--unique", key, "--payload", "  \(payload)\n")
        let task = try #require(try db.rota("list", "--json").objects().first)
        #expect(task["unique_key"] as? String == key)
        #expect(task["name"] as? String == "weird \"name\"")
        let decoded = try #require(task["payload"] as? [String: Any])
        #expect(decoded["text"] as? String == "line\nnext \"q\" é")
        #expect((decoded["list"] as? [Any])?.count == 4)
    }

    @Test func theDefaultLimitIsAScreenfulAndSaysThereIsMore() throws {
        let db = try TempDatabase.seeded()
        let piped = try db.rota("list", "--json")
        #expect(try piped.objects().count == 50)
        #expect(piped.stderr.contains("--limit"))
        let human = try db.rota("list", environment: ["LINES": "30"])
        #expect(human.status == 0)
        #expect(human.lines.count == 51)  // not a terminal: 50 rows and a header
        let big = try db.rota("list", "--limit", "1000000000", "--json")
        #expect(try big.objects().count == 100)
        #expect(big.stderr.isEmpty)
        let few = try db.rota("list", "--limit", "3", "--json")
        #expect(try few.objects().compactMap { $0["id"] as? Int } == [100, 99, 98])
        let next = try db.rota("list", "--limit", "3", "--before", "98", "--json")
        #expect(try next.objects().compactMap { $0["id"] as? Int } == [97, 96, 95])
    }

    @Test func stateMayBeRepeatedOrCommaSeparated() throws {
        let db = try TempDatabase.seeded()
        let repeated = try db.rota("list", "--state", "dead", "--state", "cancelled", "--all", "--json").objects()
        #expect(repeated.count == 15)
        #expect(Set(repeated.compactMap { $0["state"] as? String }) == ["dead", "cancelled"])
        let comma = try db.rota("list", "--state", "dead,cancelled", "--all", "--json").objects()
        #expect(comma.count == 15)
        #expect(try db.rota("list", "--state", "running", "--json").objects().count == 2)
    }

    @Test func queueNameAndSinceFilter() throws {
        let db = try TempDatabase.seeded()
        let queue = try db.rota("list", "--queue", "q1", "--all", "--json").objects()
        #expect(queue.count == 20)
        #expect(queue.allSatisfy { $0["queue"] as? String == "q1" })
        let name = try db.rota("list", "--name", "bench.3", "--all", "--json").objects()
        #expect(name.compactMap { $0["id"] as? Int } == [84, 64, 44, 24, 4])
        // Tasks are created 7.2 h apart, the newest 7.2 h ago.
        let since = try db.rota("list", "--since", "1d", "--all", "--json").objects()
        #expect(since.compactMap { $0["id"] as? Int } == [100, 99, 98])
        #expect(try db.rota("list", "--queue", "nope", "--json").objects().isEmpty)
        #expect(try db.rota("list", "--queue", "nope").stdout == "No tasks match.\n")
    }

    @Test func theHumanTableIsAlignedAndFitsTheWidth() throws {
        let db = try TempDatabase.seeded()
        for width in [50, 80, 120, 250] {
            let result = try db.rota("list", "--all", environment: ["COLUMNS": String(width)])
            #expect(result.status == 0)
            #expect(result.lines.count == 101)
            #expect(result.lines.allSatisfy { $0.count <= width }, "width \(width):\n\(result.stdout)")
            #expect(result.lines[0].hasPrefix(" ID  STATE"))
            #expect(!hasANSI(result.stdout), "no colour when stdout is not a terminal")
        }
        let wide = try db.rota("list", "--all", environment: ["COLUMNS": "250"])
        #expect(wide.lines[0].contains("LAST ERROR"))
        let deadRow = try #require(wide.lines.first { $0.hasPrefix(" 71 ") })
        #expect(deadRow.contains("dead"))
        #expect(deadRow.contains("3/3"))
        #expect(deadRow.contains("synthetic failure 70"))
        #expect(deadRow.contains("ago"))
        // Columns line up: every row's STATE starts where the header's does.
        let stateColumn = try #require(wide.lines[0].range(of: "STATE")).lowerBound.utf16Offset(in: wide.lines[0])
        for line in wide.lines.dropFirst() {
            let index = line.index(line.startIndex, offsetBy: stateColumn)
            #expect(line[line.index(before: index)] == " " && line[index] != " ", "misaligned: \(line)")
        }
    }

    @Test(arguments: [
        (["--state", "bogus"], "scheduled, running, succeeded, dead, cancelled"),
        (["--since", "yesterday"], "--since"),
        (["--limit", "-1"], "--limit"),
        (["--limit", "lots"], "limit"),
        (["--all", "--limit", "5"], "contradict"),
    ])
    func badArgumentsExitTwo(arguments: [String], reason: String) throws {
        let db = try TempDatabase.seeded()
        let result = try db.rota(arguments: ["list"] + arguments)
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains(reason), "\(result)")
        #expect(result.stdout.isEmpty)
    }

    @Test func aMissingDatabaseIsReportedNotCreated() throws {
        let db = try TempDatabase()
        for command in [["list"], ["show", "1"], ["stats"], ["workers"], ["check"], ["retry", "1"], ["cancel", "1"],
                        ["purge", "--older-than", "1d"]] {
            let result = try db.rota(arguments: command)
            #expect(result.status == 1, "\(command): \(result)")
            #expect(result.stderr.contains("no Rota database at \(db.path)"), "\(command): \(result)")
            #expect(!FileManager.default.fileExists(atPath: db.path), "\(command) created the database")
        }
    }

    @Test func theDatabaseComesFromROTA_DB() throws {
        let db = try TempDatabase.seeded()
        let result = try Rota.run(["list", "--json", "--limit", "1"], environment: ["ROTA_DB": db.path])
        #expect(try result.objects().first?["id"] as? Int == 100)
    }
}
