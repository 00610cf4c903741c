import Foundation
import Synchronization
import PostgresNIO
import Testing
@testable import Rota
@testable import RotaPostgresStore

/// What only the PostgreSQL store does (the conformance suite covers what every store does): LISTEN/NOTIFY
/// wake-ups, the cluster's leader, its schema's refusals. Runs when ROTA_TEST_POSTGRES_URL names a server.
@Suite(.enabled(if: PostgresTestServer.url != nil, "ROTA_TEST_POSTGRES_URL is not set (scripts/test starts a throwaway PostgreSQL)"))
struct PostgresStoreTests {
    /// A configuration on a schema no other test uses.
    private func configuration(schema: String = PostgresTestServer.freshSchemaName(),
                               access: PostgresTaskStore.Configuration.Access = .migrate) throws -> PostgresTaskStore.Configuration {
        var configuration = try PostgresTaskStore.Configuration(url: try #require(PostgresTestServer.url), access: access)
        configuration.schema = schema
        configuration.maxConnections = 4
        return configuration
    }

    @Test func anEnqueueByAnotherHandleWakesAWatcher() async throws {
        let schema = PostgresTestServer.freshSchemaName()
        let watcher = try await PostgresTaskStore.connect(try configuration(schema: schema))
        let other = try await PostgresTaskStore.connect(try configuration(schema: schema))
        let seen = Signal()
        let watch = try #require(watcher.watchCommits { seen.fire() })
        let before = try watcher.externalCommitVersion()
        // The LISTEN may not be in place for the first enqueue: enqueue until one is seen.
        try await eventually {
            _ = try await other.enqueue(TaskSpec(name: "ping"))
            return try watcher.externalCommitVersion() > before
        }
        #expect(seen.count > 0)
        watch.stop()
        await watcher.close()
        await other.close()
    }

    /// postgres-nio drops a query written to a connection that has closed, and its caller would wait forever:
    /// this wedged a scheduler when the server restarted between two statements of its transaction.
    @Test func aStatementOnAConnectionTheServerEndedFailsAtOnceInsteadOfWaitingForever() async throws {
        let store = try await PostgresTaskStore.connect(try configuration())
        let other = try await PostgresTaskStore.connect(try configuration())
        let logger = store.logger
        try await store.client.withConnection { connection in
            let pid = try #require(try await connection.rows("SELECT pg_backend_pid()", [], logger) { try $0.int(0) }.first)
            let ended = try await other.read { try await $0.rows("SELECT pg_terminate_backend($1::int)", [pid], logger) { try $0.bool(0) } }
            #expect(ended == [true])
            try await connection.closeFuture.get()
            await #expect(throws: RotaError.self) { try await connection.run("SELECT 1", logger) }
        }
        // The pool replaces the connection: the store carries on.
        #expect(try await store.enqueue(TaskSpec(name: "after")).id > 0)
        await store.close()
        await other.close()
    }

    /// Enqueues inside a queue's notify interval send no NOTIFY of their own; one trailing NOTIFY follows
    /// them, so a watcher still hears of the last one.
    @Test func enqueuesInsideTheNotifyIntervalAreFollowedByOneTrailingNotify() async throws {
        let schema = PostgresTestServer.freshSchemaName()
        let watcher = try await PostgresTaskStore.connect(try configuration(schema: schema))
        var burstConfiguration = try configuration(schema: schema)
        burstConfiguration.notifyInterval = .milliseconds(300)
        let other = try await PostgresTaskStore.connect(burstConfiguration)
        let watch = try #require(watcher.watchCommits {})
        // Wait until the LISTEN is in place: an enqueue on another queue is heard.
        let start = try watcher.externalCommitVersion()
        try await eventually {
            _ = try await other.enqueue(TaskSpec(name: "ping", queue: "probe-\(UUID().uuidString.prefix(8))"))
            return try watcher.externalCommitVersion() > start
        }
        let before = try watcher.externalCommitVersion()
        // The first notifies at its commit; those after it inside 300 ms leave it to the trailing one.
        for n in 0..<5 { _ = try await other.enqueue(TaskSpec(name: "burst-\(n)", queue: "burst")) }
        try await eventually { try watcher.externalCommitVersion() >= before + 2 }
        watch.stop()
        await watcher.close()
        await other.close()
    }

    @Test func theNotifyGateSendsOnePerQueuePerIntervalAndNeverNoneAfterACommit() {
        let gate = NotifyGate(interval: .seconds(3600))
        #expect(gate.split(["a"]) == (["a"], []))
        let second = gate.split(["a", "b"])
        #expect(second.now == ["b"] && second.later == ["a"])
        let trailing = gate.follow(["a"])
        #expect(trailing.map(\.0) == ["a"])
        #expect(trailing.first.map { $0.1 > ContinuousClock.now + .seconds(3000) } == true)
        // One is on its way (it leaves after any commit made now): no second one, and none in the transaction.
        #expect(gate.follow(["a"]).isEmpty)
        #expect(gate.split(["a"]) == ([], ["a"]))
        // Once it left, a later commit inside the interval needs its own trailing NOTIFY.
        gate.sent("a")
        #expect(gate.split(["a"]) == ([], ["a"]))
        #expect(gate.follow(["a"]).map(\.0) == ["a"])
        // A zero interval: every transaction notifies itself.
        let always = NotifyGate(interval: .zero)
        #expect(always.split(["a"]) == (["a"], []))
        #expect(always.split(["a"]) == (["a"], []))
    }

    @Test func aWatcherHearsItsOwnSchemaOnly() {
        #expect(PostgresTaskStore.isOurs(payload: "tenant_a/default", schema: "tenant_a"))
        #expect(!PostgresTaskStore.isOurs(payload: "tenant_ab/default", schema: "tenant_a"))
        #expect(!PostgresTaskStore.isOurs(payload: "tenant_b/default", schema: "tenant_a"))
        #expect(PostgresTaskStore.isOurs(payload: "public/q/with/slashes", schema: "public"))
    }

    @Test func oneLeaderAtATimeAndAnotherTakesOverWhenItsLeaseLapsesOrItResigns() async throws {
        let schema = PostgresTestServer.freshSchemaName()
        let a = try await PostgresTaskStore.connect(try configuration(schema: schema))
        let b = try await PostgresTaskStore.connect(try configuration(schema: schema))
        let t0 = Date(unixMillis: 4_102_444_800_000)
        #expect(try await a.lead(worker: "a", now: t0, until: t0 + 30))
        #expect(try await !b.lead(worker: "b", now: t0 + 1, until: t0 + 31))
        #expect(try await a.lead(worker: "a", now: t0 + 10, until: t0 + 40))   // renewed
        #expect(try await !b.lead(worker: "b", now: t0 + 35, until: t0 + 65))  // still a's
        #expect(try await b.lead(worker: "b", now: t0 + 40, until: t0 + 70))   // a's lapsed
        #expect(try await !a.lead(worker: "a", now: t0 + 41, until: t0 + 71))
        #expect(try await a.leader()?.worker == "b")
        try await b.resign(worker: "b")
        #expect(try await a.leader() == nil)
        #expect(try await a.lead(worker: "a", now: t0 + 42, until: t0 + 72))
        await a.close(); await b.close()
    }

    @Test func aSchemaNewerThanTheBinaryOrWithAChangedStepIsRefusedAndLeftAsItIs() async throws {
        let schema = PostgresTestServer.freshSchemaName()
        let store = try await PostgresTaskStore.connect(try configuration(schema: schema))
        _ = try await store.enqueue(TaskSpec(name: "keep"))
        await store.close()
        // A newer binary's step.
        try await withRawConnection(schema: schema) { run in
            try await run("INSERT INTO rota_migrations(version, name, checksum, applied_at) VALUES (999, 'future', 'x', 0)")
        }
        await #expect {
            _ = try await PostgresTaskStore.connect(try configuration(schema: schema))
        } throws: { error in
            (error as? RotaError)?.message.contains("newer than this rota binary") == true
        }
        // A changed step.
        try await withRawConnection(schema: schema) { run in
            try await run("DELETE FROM rota_migrations WHERE version = 999")
            try await run("UPDATE rota_migrations SET checksum = 'changed' WHERE version = 1")
        }
        await #expect {
            _ = try await PostgresTaskStore.connect(try configuration(schema: schema))
        } throws: { error in
            (error as? RotaError)?.message.contains("was changed after it was applied") == true
        }
        // Nothing was touched: the task is still there once the record is put back.
        try await withRawConnection(schema: schema) { run in
            try await run("UPDATE rota_migrations SET checksum = '\(PostgresTaskStore.migrations[0].checksum)' WHERE version = 1")
        }
        let again = try await PostgresTaskStore.connect(try configuration(schema: schema))
        #expect(try await again.allTasks().map(\.name) == ["keep"])
        await again.close()
    }

    @Test func anExistingOrReadOnlyOpenOfAnEmptySchemaSaysToMigrateAndCreatesNothing() async throws {
        let schema = PostgresTestServer.freshSchemaName()
        for access in [PostgresTaskStore.Configuration.Access.existing, .readOnly] {
            await #expect {
                _ = try await PostgresTaskStore.connect(try configuration(schema: schema, access: access))
            } throws: { error in
                (error as? RotaError)?.message.contains("rota migrate") == true
            }
        }
        let migrated = try await PostgresTaskStore.connect(try configuration(schema: schema))
        #expect(try await migrated.schemaVersion().applied == PostgresTaskStore.migrations.count)
        await migrated.close()
    }

    /// Runs statements in `schema` through a store's pool, outside the store's API (to damage it on purpose).
    private func withRawConnection(schema: String, _ body: (_ run: (String) async throws -> Void) async throws -> Void) async throws {
        var raw = try configuration(schema: schema, access: .existing)
        raw.access = .readOnly
        let client = PostgresClientBox(raw)
        try await body { sql in try await client.execute(sql) }
        await client.close()
    }
}

/// A bare pool on the test server (no schema check), for tests that damage a schema on purpose.
private final class PostgresClientBox: Sendable {
    private let client: PostgresClient
    private let runner: Task<Void, Never>

    init(_ configuration: PostgresTaskStore.Configuration) {
        client = PostgresClient(configuration: configuration.clientConfiguration())
        let client = self.client
        runner = Task { await client.run() }
    }

    func execute(_ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql))
    }

    func close() async {
        runner.cancel()
        await runner.value
    }
}

/// Counts calls from any thread.
private final class Signal: Sendable {
    private let calls = Atomic<Int>(0)
    func fire() { calls.add(1, ordering: .relaxed) }
    var count: Int { calls.load(ordering: .relaxed) }
}

/// Retries `condition` until it holds (waiting for an event; the limit only guards against a hang).
private func eventually(_ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("a condition did not hold within 60 s")
}
