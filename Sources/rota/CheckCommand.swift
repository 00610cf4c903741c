import ArgumentParser
import Foundation
import Rota
import RotaPostgresStore
import RotaSQLiteStore

/// `rota check`: integrity check, schema version, WAL size (SQLite); schema version and counts (PostgreSQL).
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the database: integrity, schema version, task counts, WAL size.",
        discussion: """
            Runs SQLite's full integrity check (reads the whole file: slow on a big
            database) through a read-only connection, and compares the task counts behind
            `rota stats`, and each batch's total and finished items, with the tasks table.
            Exits 1 when the database is damaged, its counts disagree, or its schema is
            behind this binary. The counts go wrong only if the file is edited by hand;
            --recount rebuilds them.

            Warns (a "rota: warning:" line on stderr, and "warnings" in JSON; the exit
            status is unchanged) about a database file, or its -wal or -shm file, that
            its group or others can read or write: it holds commands, payloads and
            their output (rota creates it 0600). With --schedules DIR, also about DIR
            and its schedule files when group or others can write them: they choose
            what runs.

            On PostgreSQL (--db postgres://...) it reports the schema version (applied,
            known to this binary, pending migrations) and the counts; integrity, file
            and WAL sizes are the server's business and are not shown. JSON adds
            pending_migrations and database, and has no integrity, file_size_bytes or
            wal_size_bytes.

            Examples:
              rota check
              rota check --json --db /var/lib/rota/rota.db
              rota check --recount
              rota check --db postgres://rota@db.internal/rota
              rota check --db /var/lib/rota/rota.db --schedules /etc/rota/schedules
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Rebuild the task counts behind `rota stats` and the batch totals from the tasks table (one short write).")
    var recount = false

    @Option(name: .long, help: ArgumentHelp("Also warn when group or others can write this schedules directory (or file) or its files.", valueName: "dir"))
    var schedules: String?

    /// The permission warnings (``PermissionCheck``): the SQLite database's files, and `--schedules`.
    func permissionWarnings() throws -> [String] {
        (global.isPostgres ? [] : PermissionCheck.database(global.db)) + (try schedules.map(PermissionCheck.schedules) ?? [])
    }

    /// Prints each warning on stderr as `rota: warning: …`.
    func printWarnings(_ warnings: [String]) {
        for warning in warnings { printError("warning: " + warning) }
    }

    func run() async throws {
        if global.isPostgres { return try await checkPostgres() }
        let scheduleWarnings = try schedules.map(PermissionCheck.schedules) ?? []
        if recount {
            let fixed = try global.openStore(.existing, quickCheck: false).recount()
            FileHandle.standardError.write(Data("rota: task counts rebuilt (\(fixed) were wrong)\n".utf8))
        }
        let store = try global.openStore(.readOnly, quickCheck: false)
        let integrity = try store.integrityCheck()
        let version = try store.schemaVersion()
        let mismatches = integrity == ["ok"] ? try store.countMismatches() : []
        let batchMismatches = integrity == ["ok"] ? try store.batchCountMismatches() : []
        let wal = store.walSizeBytes()
        let size = (try? FileManager.default.attributesOfItem(atPath: global.db)[.size] as? NSNumber)?.int64Value ?? 0
        let ok = integrity == ["ok"] && version.applied == version.known && mismatches.isEmpty && batchMismatches.isEmpty
        let warnings = PermissionCheck.database(global.db) + scheduleWarnings
        if output.json {
            printJSON(.object([
                ("ok", .bool(ok)),
                ("path", .string(global.db)),
                ("integrity", .array(integrity.map { .string($0) })),
                ("schema_version", .int(version.applied)),
                ("known_schema_version", .int(version.known)),
            ] + Self.countsJSON(mismatches, batchMismatches) + [
                ("file_size_bytes", .int(size)),
                ("wal_size_bytes", .int(wal)),
                ("warnings", .array(warnings.map { .string($0) })),
            ]))
        } else {
            let terminal = Terminal.current
            let integrityText = integrity == ["ok"] ? terminal.paint("ok", code: "32")
                : terminal.paint("FAILED", code: "31;1") + "\n" + integrity.map { "    " + $0 }.joined(separator: "\n")
            let schema = version.applied == version.known ? "\(version.applied) (current)"
                : "\(version.applied), this binary knows \(version.known): run rota migrate"
            let countsText = Self.countsText(mismatches, batchMismatches, terminal)
            writeLines([
                "database   \(global.db)",
                "integrity  \(integrityText)",
                "counts     \(countsText)",
                "schema     \(schema)",
                "file size  \(Self.bytes(size))",
                "WAL size   \(Self.bytes(wal))",
            ])
        }
        printWarnings(warnings)
        if !ok { throw ExitCode(ExitCodes.failure) }
    }

    /// `rota check` on PostgreSQL: the schema's status against this binary, then (when it is current) the
    /// counts behind `rota stats` and the batch totals against the tasks table. Exits 1 when the schema is
    /// behind or a count is wrong.
    func checkPostgres() async throws {
        if recount {
            let fixed = try await global.withPostgres(.existing) { try await $0.recount() }
            FileHandle.standardError.write(Data("rota: task counts rebuilt (\(fixed) were wrong)\n".utf8))
        }
        let warnings = try permissionWarnings()
        // The status is read without the store's own schema check, which refuses a schema that is behind.
        let store = try await global.openPostgres(.readOnly, checkSchema: false)
        let configuration = store.configuration
        let status: PostgresSchemaStatus
        let mismatches: [CountMismatch]
        let batchMismatches: [BatchCountMismatch]
        do {
            status = try await store.schemaStatus()
            let current = status.pending.isEmpty
            mismatches = current ? try await store.countMismatches() : []
            batchMismatches = current ? try await store.batchCountMismatches() : []
            await store.close()
        } catch {
            await store.close()
            throw error
        }
        let current = status.pending.isEmpty
        let ok = current && mismatches.isEmpty && batchMismatches.isEmpty
        if output.json {
            printJSON(.object([
                ("ok", .bool(ok)),
                ("path", .string(global.displayName)),
                ("database", .string(configuration.displayName)),
                ("schema_version", .int(status.applied)),
                ("known_schema_version", .int(status.known)),
                ("pending_migrations", .array(status.pending.map { .int($0) })),
            ] + Self.countsJSON(mismatches, batchMismatches) + [
                ("warnings", .array(warnings.map { .string($0) })),
            ]))
        } else {
            let terminal = Terminal.current
            let pending = status.pending.map(String.init).joined(separator: ", ")
            let schema = current ? "\(status.applied) (current)"
                : "\(status.applied), this binary knows \(status.known) (pending: \(pending)): run rota migrate"
            let countsText = !current ? terminal.paint("not checked", code: "33") + " (the schema is not current)"
                : Self.countsText(mismatches, batchMismatches, terminal)
            writeLines([
                "database   \(global.displayName)",
                "           \(configuration.displayName)",
                "counts     \(countsText)",
                "schema     \(schema)",
            ])
        }
        printWarnings(warnings)
        if !ok { throw ExitCode(ExitCodes.failure) }
    }

    /// The counts' fields of `rota check --json`, the same on every store.
    static func countsJSON(_ mismatches: [CountMismatch], _ batchMismatches: [BatchCountMismatch]) -> [(String, JSON)] {
        [
            ("count_mismatches", .array(mismatches.map {
                .object([("queue", .string($0.queue)), ("name", .string($0.name)), ("state", .string($0.state)),
                         ("counted", .int(Int64($0.counted))), ("actual", .int(Int64($0.actual)))])
            })),
            ("batch_count_mismatches", .array(batchMismatches.map {
                .object([("batch", .string($0.batch)), ("field", .string($0.field)),
                         ("counted", .int(Int64($0.counted))), ("actual", .int(Int64($0.actual)))])
            })),
        ]
    }

    /// The `counts` line of `rota check`'s report: ok, or how many are wrong and each of them.
    static func countsText(_ mismatches: [CountMismatch], _ batchMismatches: [BatchCountMismatch], _ terminal: Terminal) -> String {
        let lines = mismatches.map { "    \($0.queue) \($0.name) \($0.state): counted \($0.counted), actual \($0.actual)" }
            + batchMismatches.map { "    batch \($0.batch) \($0.field): counted \($0.counted), actual \($0.actual)" }
        return lines.isEmpty ? terminal.paint("ok", code: "32")
            : terminal.paint("\(lines.count) wrong", code: "31;1") + " (rota check --recount rebuilds them)\n"
                + lines.joined(separator: "\n")
    }

    static func bytes(_ count: Int64) -> String {
        if count < 1024 { return "\(count) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(count) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}
