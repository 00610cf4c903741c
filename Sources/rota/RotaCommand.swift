import ArgumentParser
import Foundation
import Rota
import RotaPostgresStore
import RotaSQLiteStore

/// The `rota` command: runs a scheduler and administers any Rota database.
@main
struct RotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rota",
        abstract: "A task scheduler: tasks, cron schedules, batches in one SQLite file or a PostgreSQL database.",
        discussion: """
            Every command takes --db PATH (env ROTA_DB, default ./rota.db): a SQLite
            file, or a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE (also
            postgresql://; a unix socket directory as ?host=/run/postgresql; more
            options: sslmode, schema, application_name, listen, max_connections). Query
            commands open the database read-only and never create it; enqueue and
            migrate create it (on PostgreSQL: Rota's tables, in an existing database).
            Durations: 90s, 15m, 2h, 7d, 1h30m.
            Instants: ISO-8601 with a zone (2026-12-01T06:00:00Z).
            Exit codes: 0 success, 1 runtime failure, 2 bad usage or input (the reason
            on stderr).
            Shell completion: rota --generate-completion-script bash|zsh|fish

            Examples:
              rota enqueue --exec -- /usr/local/bin/backup --full
              rota list --state dead --since 12h
              rota show 42
              rota retry --state dead
            """,
        version: RotaVersion.string,
        subcommands: [
            EnqueueCommand.self,
            ListCommand.self,
            ShowCommand.self,
            StatsCommand.self,
            RetryCommand.self,
            CancelCommand.self,
            PurgeCommand.self,
            WorkersCommand.self,
            MigrateCommand.self,
            CheckCommand.self,
            BenchCommand.self,
            BatchCommand.self,
            RunCommand.self,
            NextCommand.self,
            SchedulesCommand.self,
            DevCommand.self,
        ]
    )

    /// Parses, runs, and maps every error to the exit-code contract (0 ok, 1 runtime failure, 2 bad usage).
    static func main() async {
        var database: String?
        do {
            // Past the file size limit (`ulimit -f`) a write fails with EFBIG and is reported in words,
            // instead of SIGXFSZ ending the process with a core dump and no message.
            signal(SIGXFSZ, SIG_IGN)
            var command = try parseAsRoot()
            database = Self.database(of: command)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            Foundation.exit(Self.report(error, database: database))
        }
    }

    /// The database a command writes to, if it is a ``WritingCommand``.
    static func database(of command: any ParsableCommand) -> String? {
        (command as? any WritingCommand)?.global.db
    }

    /// Prints `error` to stderr (or help to stdout) and returns the process exit code. A full disk met by
    /// a command that writes to `database` is told in words (see ``FullDisk``).
    static func report(_ error: any Error, database: String? = nil) -> Int32 {
        if let database, let full = FullDisk.failure(error, database: database) {
            printError(FullDisk.message(full, database: database))
            return ExitCodes.failure
        }
        if let error = error as? RotaError {
            printError(withCLIHints(error.description))
            return error.code == .invalidInput ? ExitCodes.usage : ExitCodes.failure
        }
        if let error = error as? CLIError {
            printError(error.message)
            return error.exitCode
        }
        if let code = error as? ExitCode { return code.rawValue }
        let code = exitCode(for: error)
        if code == .success {
            print(fullMessage(for: error))
            return 0
        }
        let message = fullMessage(for: error)
        if !message.isEmpty { printError(message) }
        return code == .validationFailure ? ExitCodes.usage : ExitCodes.failure
    }
}

/// The project's exit codes.
enum ExitCodes {
    static let failure: Int32 = 1
    static let usage: Int32 = 2
}

/// An error a command raises with its own message and exit code.
struct CLIError: Error {
    var message: String
    var exitCode: Int32

    /// Bad usage or input: exit 2.
    static func usage(_ message: String) -> CLIError { CLIError(message: message, exitCode: ExitCodes.usage) }
    /// A runtime failure: exit 1.
    static func failure(_ message: String) -> CLIError { CLIError(message: message, exitCode: ExitCodes.failure) }
}

/// Writes one line to standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data(("rota: " + message + "\n").utf8))
}

/// A command that writes to its database: a full disk is reported naming it (``RotaCommand/report(_:database:)``).
protocol WritingCommand {
    var global: GlobalOptions { get }
}

extension EnqueueCommand: WritingCommand {}
extension RetryCommand: WritingCommand {}
extension CancelCommand: WritingCommand {}
extension PurgeCommand: WritingCommand {}
extension MigrateCommand: WritingCommand {}
extension CheckCommand: WritingCommand {}
extension RunCommand: WritingCommand {}
extension BatchCommand.Submit: WritingCommand {}
extension BatchCommand.Retry: WritingCommand {}
extension BatchCommand.Cancel: WritingCommand {}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The database file, or a PostgreSQL URL postgres://USER@HOST:PORT/DATABASE (env ROTA_DB).", valueName: "path"))
    var db: String = ProcessInfo.processInfo.environment["ROTA_DB"] ?? "./rota.db"

    /// Opens the SQLite store, for what only SQLite has (`rota _dev`, the file checks of `rota check`); every
    /// other command opens any store through ``withStore(_:durability:quickCheck:_:)``. Queries use
    /// `.readOnly` or `.existing` so a missing database is reported, not created.
    /// - Throws: ``CLIError/usage(_:)`` when `--db` is a PostgreSQL URL.
    func openStore(_ access: SQLiteTaskStore.Access, durability: Durability = .full, quickCheck: Bool? = nil) throws -> SQLiteTaskStore {
        if isPostgres {
            throw CLIError.usage("--db \(displayName): this command works on a SQLite database file only, not on PostgreSQL")
        }
        return try SQLiteTaskStore(path: db, configuration: .init(
            access: access, durability: durability, quickCheck: quickCheck ?? (access != .readOnly)))
    }
}

/// `rota migrate`: creates the database or applies pending migrations.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create the database, or apply the migrations it lacks.",
        discussion: """
            On PostgreSQL, creates Rota's tables (prefixed rota_) in an existing database, in
            the schema the URL's schema= option names (created when missing).

            Examples:
              rota migrate --db /var/lib/rota/rota.db
              rota migrate --db postgres://rota@db.internal/rota
              rota migrate --db 'postgresql://rota@/rota?host=/run/postgresql&schema=jobs'
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let version: (applied: Int, known: Int)
        if global.isPostgres {
            version = try await global.withPostgres(.migrate) { try await $0.schemaVersion() }
        } else {
            version = try global.openStore(.create).schemaVersion()
        }
        print("\(global.displayName): schema version \(version.applied) (this binary knows \(version.known))")
    }
}

/// The store's messages say what is wrong in the library's words; the CLI adds what to type about it.
func withCLIHints(_ message: String) -> String {
    var message = message
    if message.hasPrefix("no Rota database at ") {
        message += " (create one with `rota migrate` or `rota enqueue`, or pass --db)"
    }
    message = message.replacingOccurrences(of: "before it can be read; migrate it first",
                                           with: "before it can be read; run `rota migrate`")
    message = message.replacingOccurrences(of: "stop them, then migrate it", with: "stop them, then run `rota migrate`")
    return message
}
