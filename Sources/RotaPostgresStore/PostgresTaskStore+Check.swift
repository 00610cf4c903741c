import Foundation
import Logging
import PostgresNIO
import Rota

// MARK: Checks for `rota check`: the schema's status, and counts that disagree with the tasks

extension PostgresTaskStore {
    /// Opens one connection to the server, directly (outside the store's pool), and closes it: a server that
    /// cannot be reached, a login it refuses or a database it lacks is reported at once, with the server's
    /// reason. (The pool keeps retrying a connection that fails, and fails the calls waiting for one only when
    /// its circuit breaker trips, a minute later, without the reason.) Uses the store's settings: the same
    /// place, user, TLS mode, connect timeout and startup parameters.
    /// - Throws: ``RotaError`` `.busy` when the server cannot be reached, `.database` when it refuses the login,
    ///   `.notFound` when the database does not exist; each names the place, never the password.
    public func checkConnection() async throws {
        let client = configuration.clientConfiguration()
        var target: PostgresConnection.Configuration
        do {
            if let socketDirectory = configuration.socketDirectory {
                target = .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(configuration.port)", username: configuration.user,
                               password: configuration.password, database: configuration.database)
            } else {
                // TLS as clientConfiguration() asks the pool for it.
                let tls: PostgresConnection.Configuration.TLS
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                switch configuration.sslMode {
                case "disable", "allow":
                    tls = .disable
                case "require", "verify-ca", "verify-full":
                    if configuration.sslMode == "require" { tlsConfiguration.certificateVerification = .none }
                    tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
                default:
                    tlsConfiguration.certificateVerification = .none
                    tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
                }
                target = .init(host: configuration.host ?? "localhost", port: configuration.port, username: configuration.user,
                               password: configuration.password, database: configuration.database, tls: tls)
            }
            target.options.connectTimeout = TimeAmount(client.options.connectTimeout)
            target.options.additionalStartupParameters = client.options.additionalStartupParameters
            let connection = try await PostgresConnection.connect(configuration: target, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            throw mapped(error)
        }
    }

    /// The schema's status against this binary's migrations: the highest step applied, the highest known, and
    /// the steps pending. Unlike every other call it does not wait for the store's schema check, so it answers
    /// for a schema that is missing (applied 0) or behind this binary, which the other calls refuse.
    /// - Throws: ``RotaError`` `.database` for a schema this binary refuses (newer than it, a changed or unknown
    ///   step, tables that are not Rota's), `.busy` when the server cannot be reached.
    public func schemaStatus() async throws -> PostgresSchemaStatus {
        let place = configuration.displayName
        do {
            return try await client.withConnection { [logger] connection in
                try await PostgresMigrator.status(connection, migrations: Self.migrations, place: place, logger: logger)
            }
        } catch {
            throw mapped(error)
        }
    }

    /// The per-(queue, name, state) counts behind `rota stats` that disagree with the tasks table (empty when
    /// all agree). Scans the table, in one statement (one snapshot): for `rota check`. The counts go wrong only
    /// when the tables are edited by hand; ``recount()`` rebuilds them.
    public func countMismatches() async throws -> [CountMismatch] {
        try await read { [logger] connection in
            try await connection.rows("""
                WITH actual AS (SELECT queue, name, state, count(*) AS n FROM rota_tasks GROUP BY queue, name, state),
                keys AS (SELECT queue, name, state FROM actual UNION SELECT queue, name, state FROM rota_task_counts)
                SELECT k.queue, k.name, k.state, coalesce(c.n, 0)::bigint, coalesce(a.n, 0)::bigint FROM keys k
                LEFT JOIN rota_task_counts c ON c.queue = k.queue AND c.name = k.name AND c.state = k.state
                LEFT JOIN actual a ON a.queue = k.queue AND a.name = k.name AND a.state = k.state
                WHERE coalesce(c.n, 0) <> coalesce(a.n, 0)
                ORDER BY k.queue, k.name, k.state
                """, [], logger) { row in
                CountMismatch(queue: try row.string(0), name: try row.string(1), state: try row.string(2),
                              counted: try row.int(3), actual: try row.int(4))
            }
        }
    }

    /// The batches whose `total` or `finished` disagrees with their items (empty when all agree), by batch
    /// name. Scans the batch items, in one statement: for `rota check`; ``recount()`` rebuilds them.
    public func batchCountMismatches() async throws -> [BatchCountMismatch] {
        try await read { [logger] connection in
            try await connection.rows(Self.batchActualSQL + """
                SELECT b.name, b.total, b.finished, coalesce(a.total, 0)::bigint, coalesce(a.finished, 0)::bigint
                FROM rota_batches b LEFT JOIN actual a ON a.id = b.id
                WHERE b.total <> coalesce(a.total, 0) OR b.finished <> coalesce(a.finished, 0)
                ORDER BY b.name
                """, [], logger) { row -> [BatchCountMismatch] in
                let name = try row.string(0)
                let (total, finished, actualTotal, actualFinished) = (try row.int(1), try row.int(2), try row.int(3), try row.int(4))
                var wrong: [BatchCountMismatch] = []
                if total != actualTotal {
                    wrong.append(BatchCountMismatch(batch: name, field: "total", counted: total, actual: actualTotal))
                }
                if finished != actualFinished {
                    wrong.append(BatchCountMismatch(batch: name, field: "finished", counted: finished, actual: actualFinished))
                }
                return wrong
            }.flatMap { $0 }
        }
    }

    /// Each batch's items as the tasks table has them: `actual(id, total, finished)`.
    private static let batchActualSQL = """
        WITH actual AS (
            SELECT batch_id AS id, count(*) AS total,
                   count(*) FILTER (WHERE state IN ('succeeded', 'dead', 'cancelled')) AS finished
            FROM rota_tasks WHERE batch_id IS NOT NULL GROUP BY batch_id)

        """

    /// Rebuilds `rota_task_counts`, and each batch's `total` and `finished`, from the tasks table, in one
    /// transaction; returns how many counts were wrong (rows of `rota_task_counts`, batches).
    ///
    /// While it runs, other writers wait to change counts: it locks `rota_batches` and `rota_task_counts`
    /// (EXCLUSIVE: reads go on), batches first as the triggers and the store's own counting take them, so a
    /// change committed before the rebuild is in the figures it counts, and one made after it is added to them
    /// by its own transaction. A deadlock with a writer that took them the other way round is run again.
    /// A batch that comes out complete by the rebuilt figures completes as usual (its `on_complete` task fires).
    @discardableResult
    public func recount() async throws -> Int {
        try await write { [logger] connection in
            try await connection.run("LOCK TABLE rota_batches, rota_task_counts IN EXCLUSIVE MODE", logger)
            let wrong = try await connection.rows("""
                WITH actual AS (SELECT queue, name, state, count(*) AS n FROM rota_tasks GROUP BY queue, name, state)
                SELECT ((SELECT count(*) FROM rota_task_counts c
                         WHERE c.n <> coalesce((SELECT a.n FROM actual a
                                                WHERE a.queue = c.queue AND a.name = c.name AND a.state = c.state), 0))
                      + (SELECT count(*) FROM actual a
                         WHERE NOT EXISTS (SELECT 1 FROM rota_task_counts c
                                           WHERE a.queue = c.queue AND a.name = c.name AND a.state = c.state)))::bigint
                """, [], logger) { try $0.int(0) }.first ?? 0
            try await connection.run("DELETE FROM rota_task_counts", logger)
            try await connection.run("""
                INSERT INTO rota_task_counts(queue, name, state, n)
                SELECT queue, name, state, count(*) FROM rota_tasks GROUP BY queue, name, state
                """, logger)
            // Batches: the update fires the batch triggers (a batch reopens, or completes and fires its task).
            let batches = try await connection.rows(Self.batchActualSQL + """
                , fixed AS (
                    SELECT b.id, coalesce(a.total, 0) AS total, coalesce(a.finished, 0) AS finished
                    FROM rota_batches b LEFT JOIN actual a ON a.id = b.id
                    WHERE b.total <> coalesce(a.total, 0) OR b.finished <> coalesce(a.finished, 0))
                UPDATE rota_batches b SET total = fixed.total, finished = fixed.finished
                FROM fixed WHERE b.id = fixed.id
                RETURNING b.id
                """, [], logger) { try $0.int64(0) }
            return wrong + batches.count
        }
    }
}
