import Foundation
import Testing

@Suite("rota check and rota migrate")
struct CheckCommandTests {
    @Test func aSoundDatabasePasses() async throws {
        let db = try await TempDatabase.seeded()
        let json = try await db.rota("check", "--json")
        #expect(json.status == 0, "\(json)")
        let report = try json.object()
        #expect(report["ok"] as? Bool == true)
        #expect(report["integrity"] as? [String] == ["ok"])
        let version = try #require(report["schema_version"] as? Int)
        #expect(version >= 1)
        #expect(report["known_schema_version"] as? Int == version)
        #expect((report["count_mismatches"] as? [Any])?.isEmpty == true)
        #expect((report["batch_count_mismatches"] as? [Any])?.isEmpty == true)
        #expect(report["wal_size_bytes"] is Int)
        #expect((report["file_size_bytes"] as? Int ?? 0) > 0)
        let human = try await db.rota("check")
        #expect(human.status == 0)
        #expect(human.stdout.contains("integrity  ok\n"))
        #expect(human.stdout.contains("schema     \(version) (current)\n"))
        #expect(human.stdout.contains("WAL size   "))
    }

    @Test func aFileThatIsNotADatabaseFails() async throws {
        let db = try TempDatabase()
        try Data(String(repeating: "not a database ", count: 100).utf8).write(to: URL(fileURLWithPath: db.path))
        for command in [["check"], ["list"], ["stats"], ["enqueue", "x"], ["migrate"]] {
            let result = try await db.rota(arguments: command)
            #expect(result.status == 1, "\(command): \(result)")
            #expect(result.stderr.contains("not a SQLite database"), "\(command): \(result)")
        }
        #expect(try String(contentsOfFile: db.path, encoding: .utf8).hasPrefix("not a database"))
    }

    @Test func migrateCreatesTheDatabase() async throws {
        let db = try TempDatabase()
        let result = try await db.rota("migrate")
        #expect(result.status == 0)
        #expect(result.stdout.contains("schema version "))
        #expect(try await db.rota("list", "--json").objects().isEmpty)
    }
}
