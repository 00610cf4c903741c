import ArgumentParser
import Foundation
import Rota
import RotaCron
import RotaPostgresStore

/// `rota schedules`: what is scheduled (from the database, or from schedule files), and `rota schedules check`.
struct SchedulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "List cron schedules (zone, next and last fire); check schedule files.",
        discussion: """
              rota schedules                  the stored schedules (loaded by a scheduler)
              rota schedules --schedules DIR  what DIR's files define, with stored state
              rota schedules check DIR        validate DIR's files; run and write nothing

            A schedule directory's files are every regular file in it except hidden ones
            (.name) and editor backups (name~). Errors read file:line:column: message.
            """,
        subcommands: [SchedulesListCommand.self, SchedulesCheckCommand.self],
        defaultSubcommand: SchedulesListCommand.self
    )
}

/// `rota schedules [list]`: the schedules, as a table or JSON.
struct SchedulesListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List schedules with their zone, next and last fire (the default).",
        discussion: """
            Without --schedules: every schedule stored in the database (active ones
            first; a schedule removed from the files is inactive and keeps its history).

            With --schedules DIR: the schedules the files of DIR define, checked as
            `rota schedules check` does (errors exit 2). Each is shown with its stored
            state when the database has it: last fire, whether it is active, and its
            stored next fire (unless the expression or zone changed since). Otherwise,
            or when there is no database, the next fire is computed from now and the
            last fire is empty. Stored schedules the files no longer define are not
            shown.

            --json prints an array of objects with the fields name, expression,
            explanation, timezone, task, payload, queue, priority, max_attempts,
            timeout_seconds, missed, overlap, source, active, stored, next_fire_at,
            last_fire_at, jitter_seconds, next_delay_ms, next_run_at (instants in UTC
            ISO-8601, null when none). A schedule with jitter= delays each fire's
            task by a fixed amount up to its jitter: NEXT FIRE shows that delay
            (+37s), next_run_at when the task runs (next_fire_at + next_delay_ms).
            The explanation is the expression in words, with its zone (as
            `rota next --explain`); the table's EXPLANATION column leaves the zone
            to the ZONE column.

            Examples:
              rota schedules --db /var/lib/rota/rota.db
              rota schedules --schedules /etc/rota/schedules --json |
                  jq '.[] | {name, next_fire_at}'
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("A directory of schedule files (or one file) to show.", valueName: "dir"))
    var schedules: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        let now = Date()
        var rows: [CronCLIScheduleRow] = []
        if let schedules {
            let loaded = ScheduleLoading.load(directory: schedules)
            try cronCLIReport(loaded)
            var stored: [String: ScheduleRecord] = [:]
            if try await databaseExists() {
                let records = try await global.withStore(.readOnly) { try await $0.schedules() }
                stored = Dictionary(records.map { ($0.spec.name, $0) }, uniquingKeysWith: { a, _ in a })
            } else {
                printError("no database at \(global.displayName): showing the files' schedules, next fires computed from now")
            }
            for spec in loaded.specs {
                let record = stored[spec.name]
                let sameTiming = record.map { $0.spec.expression == spec.expression && $0.spec.timeZone == spec.timeZone } ?? false
                let next = record.flatMap { $0.active && sameTiming ? $0.nextFireAt : nil }
                    ?? FirePlan.firstFire(of: spec, after: now)
                rows.append(CronCLIScheduleRow(spec: spec, active: record?.active ?? false, stored: record != nil, next: next,
                                               last: record?.lastFireAt))
            }
        } else {
            rows = try await global.withStore(.readOnly) { try await $0.schedules() }.map {
                CronCLIScheduleRow(spec: $0.spec, active: $0.active, stored: true, next: $0.active ? $0.nextFireAt : nil,
                                   last: $0.lastFireAt)
            }
        }
        if json {
            print(CronCLIJSON.array(rows.map(\.json)).rendered())
            return
        }
        if rows.isEmpty {
            printError(schedules == nil ? "no schedules in \(global.displayName)" : "no schedules in \(schedules!)")
            return
        }
        let header = ["NAME", "ZONE", "NEXT FIRE", "LAST FIRE", "EXPRESSION", "EXPLANATION", "ACTIVE", "RUNS"]
        let table = rows.map { row in
            [row.spec.name, row.spec.timeZone, row.nextText, row.last.map(CronCLITime.utc) ?? "-",
             row.spec.expression, row.explanation(withZone: false), row.stored ? (row.active ? "yes" : "no") : "new", row.runs]
        }
        print(cronCLITable([header] + table), terminator: "")
    }

    /// Whether there is a database to read stored schedules from: the file exists (SQLite), or Rota's tables
    /// were created in the schema (PostgreSQL; a server that cannot be reached is an error).
    private func databaseExists() async throws -> Bool {
        guard global.isPostgres else { return FileManager.default.fileExists(atPath: global.db) }
        let store = try await global.openPostgres(.readOnly, checkSchema: false)
        do {
            let status = try await store.schemaStatus()
            await store.close()
            return status.applied > 0
        } catch {
            await store.close()
            throw error
        }
    }
}

/// `rota schedules check DIR`: validates schedule files without running or writing anything.
struct SchedulesCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate schedule files without running them.",
        discussion: """
            Reads every file of DIR (except hidden files and name~ backups) as one set,
            as `rota run --schedules DIR` would, and writes nothing. Each error is
            printed on stderr as file:line:column: message, and the exit status is 2;
            with no error, a summary is printed and the exit status is 0.

            Example: rota schedules check /etc/rota/schedules
            """
    )

    @Argument(help: ArgumentHelp("A directory of schedule files (or one file).", valueName: "dir"))
    var directory: String

    func run() async throws {
        let loaded = ScheduleLoading.load(directory: directory)
        try cronCLIReport(loaded)
        let schedules = loaded.specs.count
        let files = loaded.files.count
        print("\(directory): \(schedules) schedule\(schedules == 1 ? "" : "s") in \(files) file\(files == 1 ? "" : "s"), no errors")
    }
}

/// Prints every error of `loaded` on stderr as `file:line:column: message` and fails with exit 2, if any.
func cronCLIReport(_ loaded: ScheduleDirectory) throws {
    guard !loaded.isValid else { return }
    var text = ""
    for error in loaded.errors { text += error.description + "\n" }
    FileHandle.standardError.write(Data(text.utf8))
    let count = loaded.errors.count
    let files = Set(loaded.errors.map(\.file)).count
    throw CLIError.usage("\(count) error\(count == 1 ? "" : "s") in \(files) file\(files == 1 ? "" : "s"); no schedule was loaded")
}

/// One schedule as `rota schedules` shows it.
struct CronCLIScheduleRow {
    var spec: ScheduleSpec
    var active: Bool
    /// False for a schedule of the files that the database does not hold yet (shown as `new`).
    var stored: Bool
    var next: Date?
    var last: Date?

    /// The delay of the next fire's task (its jitter), in milliseconds; nil without a next fire or a jitter.
    var nextDelayMillis: Int64? {
        guard let next, spec.jitter != nil else { return nil }
        return spec.delayMillis(forFire: next)
    }

    /// The NEXT FIRE cell: the instant, and with a jitter its delay (`2026-12-02T10:00:00Z +37.412s`).
    var nextText: String {
        guard let next else { return "-" }
        guard let delay = nextDelayMillis else { return CronCLITime.utc(next) }
        return CronCLITime.utc(next) + " +" + Self.delayText(delay)
    }

    /// A delay in milliseconds as `37s`, `37.412s`, `4m05s`, `1h02m03.5s`.
    static func delayText(_ millis: Int64) -> String {
        let seconds = millis / 1000
        var fraction = millis % 1000 == 0 ? "" : "." + TimeText.pad(millis % 1000, 3)
        while fraction.hasSuffix("0") { fraction.removeLast() }
        let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60)
        if h > 0 { return "\(h)h" + TimeText.pad(m, 2) + "m" + TimeText.pad(s, 2) + fraction + "s" }
        if m > 0 { return "\(m)m" + TimeText.pad(s, 2) + fraction + "s" }
        return "\(s)" + fraction + "s"
    }

    /// The expression in words (``CronExpression/explanation(timeZone:)``), with its zone for JSON (the table
    /// has a column for it); empty for an expression this binary cannot parse (a database of another version).
    func explanation(withZone: Bool) -> String {
        (try? CronExpression(spec.expression))?.explanation(timeZone: withZone ? spec.timeZone : nil) ?? ""
    }

    /// What it runs: `exec PROGRAM ARGS…` or `task NAME PAYLOAD`.
    var runs: String {
        let text: String
        if spec.taskName == ScheduleLoading.execTaskName,
           let object = try? JSONSerialization.jsonObject(with: Data(spec.payload.utf8)) as? [String: Any],
           let argv = object["argv"] as? [String] {
            text = "exec " + argv.map { word in
                word.isEmpty || word.contains(where: { $0 == " " || $0 == "\t" || $0 == "'" || $0 == "\"" })
                    ? "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'" : word
            }.joined(separator: " ")
        } else {
            text = "task \(spec.taskName) \(spec.payload)"
        }
        let oneLine = text.replacingOccurrences(of: "\n", with: " ")
        return oneLine.count > 60 ? String(oneLine.prefix(59)) + "…" : oneLine
    }

    var json: CronCLIJSON {
        .object([
            ("name", .string(spec.name)),
            ("expression", .string(spec.expression)),
            ("explanation", .string(explanation(withZone: true))),
            ("timezone", .string(spec.timeZone)),
            ("task", .string(spec.taskName)),
            ("payload", .raw(spec.payload)),
            ("queue", .string(spec.queue)),
            ("priority", .int(spec.priority)),
            ("max_attempts", .int(spec.maxAttempts)),
            ("timeout_seconds", spec.timeout.map { .int(Int($0.components.seconds)) } ?? .null),
            ("missed", .string(spec.missed.description)),
            ("overlap", .string(spec.overlap.rawValue)),
            ("source", spec.source.map { .string($0) } ?? .null),
            ("active", .bool(active)),
            ("stored", .bool(stored)),
            ("next_fire_at", next.map { .string(CronCLITime.utc($0)) } ?? .null),
            ("last_fire_at", last.map { .string(CronCLITime.utc($0)) } ?? .null),
            ("jitter_seconds", spec.jitter.map { .int(Int($0.components.seconds)) } ?? .null),
            ("next_delay_ms", next.map { _ in .int(Int(nextDelayMillis ?? 0)) } ?? .null),
            ("next_run_at", next.map { .string(TimeText.iso(spec.runAt(forFire: $0))) } ?? .null),
        ])
    }
}

/// Left-aligned columns two spaces apart; each line ends with a newline.
func cronCLITable(_ rows: [[String]]) -> String {
    guard let columns = rows.first?.count else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    var out = ""
    for row in rows {
        var line = ""
        for (i, cell) in row.enumerated() {
            line += i == columns - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
        }
        out += line + "\n"
    }
    return out
}

/// A JSON value with ordered object fields, for `--json` output.
indirect enum CronCLIJSON {
    case null
    case bool(Bool)
    case int(Int)
    case string(String)
    case array([CronCLIJSON])
    case object([(String, CronCLIJSON)])
    /// Stored JSON text, embedded as is when valid (as a string otherwise).
    case raw(String)

    /// Pretty-printed with two-space indents.
    func rendered(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1)
        let close = String(repeating: "  ", count: indent)
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int(let value): return String(value)
        case .string(let value): return Self.quote(value)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { pad + $0.rendered(indent: indent + 1) }.joined(separator: ",\n") + "\n" + close + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n" + fields.map { pad + Self.quote($0.0) + ": " + $0.1.rendered(indent: indent + 1) }.joined(separator: ",\n")
                + "\n" + close + "}"
        case .raw(let text):
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let valid = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8), options: [.fragmentsAllowed])) != nil
            return valid ? trimmed : Self.quote(text)
        }
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
