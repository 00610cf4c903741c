import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// What a row change costs in SQLite, and migration 4, which made the CHECK constraints cheap.
@Suite("SQLiteTaskStore: per-row cost of the schema")
struct SchemaCostTests {
    /// The statements that run once per task (or per attempt) on the hot path.
    static let perRowStatements: [(String, String)] = [
        ("insert", SQLiteTaskStore.insertSQL),
        ("insert chunk", SQLiteTaskStore.insertChunkSQL),
        ("success", SQLiteTaskStore.succeededOneSQL),
        ("success (any task)", SQLiteTaskStore.succeededOneAnySQL),
        ("success returning", SQLiteTaskStore.succeededOneReturningSQL),
        ("retry", SQLiteTaskStore.retryOneSQL),
        ("dead", SQLiteTaskStore.deadOneSQL),
        ("cancelled", SQLiteTaskStore.cancelledOneSQL),
        ("hand back", SQLiteTaskStore.handBackOneSQL),
        ("attempt", SQLiteTaskStore.attemptOneSQL),
        ("attempt (success)", SQLiteTaskStore.attemptSQL),
    ]

    /// Statements (with their trigger programs, which EXPLAIN lists too) that open a temporary b-tree.
    /// `beforeStep9`: the insert without the column migration 9 added, for an older schema.
    private func statementsOpeningTemporaryTables(_ db: Connection, beforeStep9: Bool = false) throws -> [String] {
        try Self.perRowStatements.compactMap { name, sql in
            var sql = sql
            if beforeStep9 {
                sql = sql.replacingOccurrences(of: ", poison_limit)", with: ")")
                    .replacingOccurrences(of: ", coalesce(?14, 2))", with: ")")
            }
            let statement = try db.prepare("EXPLAIN " + sql) // parameters left unbound
            var opens = 0
            var program = "main"
            while try statement.step() {
                let opcode = statement.string(1)
                if opcode == "Init", let comment = statement.optionalString(5), comment.hasPrefix("-- TRIGGER ") {
                    program = String(comment.dropFirst("-- TRIGGER ".count))
                }
                // batches_complete runs once per batch, when its last item finishes: not per row.
                if opcode == "OpenEphemeral", program != "batches_complete" { opens += 1 }
            }
            return opens > 0 ? "\(name): \(opens)" : nil
        }
    }

    /// A CHECK constraint or trigger with `IN (a, b, c, ...)` builds a temporary b-tree of the list on every
    /// row it checks (nearly half of SQLite's work per task, measured in callgrind). Migration 4 wrote them
    /// as OR chains; this keeps any such list from coming back. It also shows the test can fail: at
    /// schema 3 the same statements open temporary tables.
    @Test func noPerRowStatementBuildsATemporaryTable() throws {
        let dir = try StoreTempDir()
        let db = try Connection(path: dir.path(), options: .init(quickCheck: false))
        try db.enableWAL()
        _ = try Migrator.migrate(db, with: SQLiteTaskStore.migrations.filter { $0.version <= 3 })
        #expect(try statementsOpeningTemporaryTables(db, beforeStep9: true).count >= 8, "schema 3 had IN lists in its checks")
        _ = try Migrator.migrate(db, with: SQLiteTaskStore.migrations)
        // What is left is one table per statement, not per row: the rows RETURNING buffers (that form of the
        // success runs only when the caller lacks the queue and name). A multi-row insert also buffered its
        // VALUES in one while tasks had insert triggers (until migration 7).
        let left = try statementsOpeningTemporaryTables(db)
        #expect(left == ["success returning: 1"], "\(left)")
    }

    /// The trigger programs each statement runs (EXPLAIN lists them).
    private func triggers(_ db: Connection, _ sql: String) throws -> Set<String> {
        let statement = try db.prepare("EXPLAIN " + sql)
        var names: Set<String> = []
        while try statement.step() {
            if statement.string(1) == "Init", let comment = statement.optionalString(5), comment.hasPrefix("-- TRIGGER ") {
                names.insert(String(comment.dropFirst("-- TRIGGER ".count)))
            }
        }
        return names
    }

    /// Migration 6: a claim and the success of a task outside a batch run no trigger program (the store
    /// counts them); every other state change of the store runs the count and batch triggers, because it
    /// names a column they watch. A new state-changing statement that named neither would go uncounted.
    @Test func onlyTheTwoHotTransitionsRunNoUpdateTrigger() throws {
        let f = try StoreFixture()
        let db = try f.connection()
        #expect(try triggers(db, SQLiteTaskStore.claimSQL(nameCount: nil)).isEmpty)
        #expect(try triggers(db, SQLiteTaskStore.claimSQL(nameCount: 2)).isEmpty)
        #expect(try triggers(db, SQLiteTaskStore.succeededOneSQL).isEmpty)
        let cold: [(String, String)] = [
            ("success (any task)", SQLiteTaskStore.succeededOneAnySQL),
            ("success returning", SQLiteTaskStore.succeededOneReturningSQL),
            ("retry", SQLiteTaskStore.retryOneSQL), ("dead", SQLiteTaskStore.deadOneSQL),
            ("cancelled", SQLiteTaskStore.cancelledOneSQL), ("hand back", SQLiteTaskStore.handBackOneSQL),
            ("retry by hand", SQLiteTaskStore.retrySQL + " WHERE id = ?2"),
            ("recover", SQLiteTaskStore.recoverSQL(condition: "lease_until < ?1", error: "'x'")),
            ("cancel", SQLiteTaskStore.cancelScheduledSQL),
            ("cancel batch", SQLiteTaskStore.cancelBatchSQL),
        ]
        for (name, sql) in cold {
            #expect(try triggers(db, sql).isSuperset(of: ["tasks_count_update", "tasks_batch_state"]), "\(name)")
        }
    }

    /// Migration 4 rebuilds tasks and attempts (SQLite cannot change a CHECK in place): every row, index and
    /// trigger is the same afterwards, the attempts survive the drop of their parent table, and the counts,
    /// batch triggers and foreign keys still work.
    @Test func migration4KeepsEveryRowIndexAndTrigger() async throws {
        let dir = try StoreTempDir()
        let path = dir.path()
        func schema() throws -> [String: String] {
            let db = try Connection(path: path, options: .init(mode: .readOnly, quickCheck: false))
            return Dictionary(uniqueKeysWithValues: try db.query(
                "SELECT type || ' ' || name, ifnull(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'") {
                ($0.string(0), $0.string(1))
            })
        }
        do {
            let db = try Connection(path: path, options: .init(quickCheck: false)) // foreign keys on, as the store
            try db.enableWAL()
            _ = try Migrator.migrate(db, with: SQLiteTaskStore.migrations.filter { $0.version <= 3 })
            try db.execute("""
                INSERT INTO batches(id, name, created_at) VALUES (1, 'b', 1);
                INSERT INTO tasks(name, queue, state, payload, run_at, created_at, updated_at, finished_at, batch_id, batch_item,
                                  unique_key, schedule, fire_at, attempts, lease_owner)
                VALUES ('a', 'q', 'scheduled', '{"n":1}', 1, 1, 1, NULL, NULL, NULL, 'key', NULL, NULL, 0, NULL),
                       ('a', 'q', 'running', '{}', 1, 1, 1, NULL, 1, 'i1', NULL, NULL, NULL, 1, 'w'),
                       ('b', 'default', 'succeeded', '{}', 1, 1, 1, 5, 1, 'i2', NULL, NULL, NULL, 1, NULL),
                       ('b', 'default', 'dead', '{}', 1, 1, 1, 6, NULL, NULL, NULL, 's', 7, 3, NULL),
                       ('c', 'default', 'cancelled', '{}', 1, 1, 1, 8, NULL, NULL, NULL, NULL, NULL, 0, NULL);
                INSERT INTO attempts(task_id, attempt, worker, started_at, finished_at, outcome, error, result)
                VALUES (3, 1, 'w', 4, 5, 'succeeded', NULL, '{"ok":true}'), (4, 1, 'w', 1, 2, 'failed', 'boom', NULL),
                       (4, 2, 'w', 2, 3, 'timed_out', NULL, NULL), (4, 3, 'w', 3, 6, 'lost', NULL, NULL);
                UPDATE batches SET sealed = 1 WHERE id = 1;
                """)
        }
        var before = try StoreDump(path: path)
        let schemaBefore = try schema()
        do {
            let db = try Connection(path: path, options: .init(quickCheck: false)) // foreign keys on
            #expect(try Migrator.migrate(db, with: SQLiteTaskStore.migrations.filter { $0.version <= 4 }) == [4])
        }
        var after = try StoreDump(path: path)
        before.tables["rota_migrations"] = nil
        after.tables["rota_migrations"] = nil
        #expect(after == before)
        #expect(after.count("attempts") == 4)
        let schemaAfter = try schema()
        #expect(Set(schemaAfter.keys) == Set(schemaBefore.keys))
        let changed = Set(schemaAfter.keys.filter { schemaAfter[$0] != schemaBefore[$0] })
        #expect(changed == ["table tasks", "table attempts", "trigger tasks_batch_insert", "trigger tasks_batch_state",
                            "trigger tasks_batch_delete"])
        for key in changed { #expect(schemaAfter[key]?.contains(" IN (") == false, "\(key)") }
        let db = try Connection(path: path, options: .init(quickCheck: false))
        #expect(try db.query("PRAGMA integrity_check") { $0.string(0) } == ["ok"])
        let store = try SQLiteTaskStore(path: path) // and the later steps
        #expect(try db.query("PRAGMA foreign_key_check") { $0.string(0) } == [])
        #expect(try store.countMismatches().isEmpty)

        // The constraints still hold, the counts and the batch triggers still run.
        #expect(throws: SQLiteError.self) { try db.execute("UPDATE tasks SET state = 'lost' WHERE id = 1") }
        #expect(throws: SQLiteError.self) {
            try db.execute("INSERT INTO attempts(task_id, attempt, finished_at, outcome) VALUES (1, 1, 1, 'won')")
        }
        #expect(throws: SQLiteError.self) {
            try db.execute("INSERT INTO attempts(task_id, attempt, finished_at, outcome) VALUES (99, 1, 1, 'failed')")
        }
        _ = try store.completeSync([Completion(taskID: 2, attempt: 1, worker: "w", startedAt: Date(), finishedAt: Date(),
                                                resolution: .succeeded(result: nil))])
        await #expect(try store.batch(named: "b")?.completedAt != nil, "the last item finished the batch")
        #expect(try store.countMismatches().isEmpty)
        try db.execute("DELETE FROM tasks WHERE id = 4")
        #expect(try db.scalarInt("SELECT count(*) FROM attempts WHERE task_id = 4") == 0, "ON DELETE CASCADE still holds")
    }
}
