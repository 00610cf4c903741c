import ArgumentParser
import Foundation
import Rota

/// `rota check`: integrity check, schema version, WAL size.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the database: integrity, schema version, WAL size.",
        discussion: """
            Runs SQLite's full integrity check (reads the whole file: slow on a big database) through a
            read-only connection. Exits 1 when the database is damaged or its schema is behind this binary.

            Examples:
              rota check
              rota check --json --db /var/lib/rota/rota.db
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let store = try global.openStore(.readOnly, quickCheck: false)
        let integrity = try store.integrityCheck()
        let version = try store.schemaVersion()
        let wal = store.walSizeBytes()
        let size = (try? FileManager.default.attributesOfItem(atPath: global.db)[.size] as? NSNumber)?.int64Value ?? 0
        let ok = integrity == ["ok"] && version.applied == version.known
        if output.json {
            printJSON(.object([
                ("ok", .bool(ok)),
                ("path", .string(global.db)),
                ("integrity", .array(integrity.map { .string($0) })),
                ("schema_version", .int(version.applied)),
                ("known_schema_version", .int(version.known)),
                ("file_size_bytes", .int(size)),
                ("wal_size_bytes", .int(wal)),
            ]))
        } else {
            let terminal = Terminal.current
            let integrityText = integrity == ["ok"] ? terminal.paint("ok", code: "32")
                : terminal.paint("FAILED", code: "31;1") + "\n" + integrity.map { "    " + $0 }.joined(separator: "\n")
            let schema = version.applied == version.known ? "\(version.applied) (current)"
                : "\(version.applied), this binary knows \(version.known): run rota migrate"
            writeLines([
                "database   \(global.db)",
                "integrity  \(integrityText)",
                "schema     \(schema)",
                "file size  \(Self.bytes(size))",
                "WAL size   \(Self.bytes(wal))",
            ])
        }
        if !ok { throw ExitCode(ExitCodes.failure) }
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
