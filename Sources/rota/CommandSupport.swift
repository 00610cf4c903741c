import ArgumentParser
import Foundation
import Rota
import RotaPostgresStore
import RotaSQLiteStore

/// The state names, for completions and messages.
let stateNames = TaskState.allCases.map(\.rawValue)

/// Parses `--state` values (repeatable, each may also be comma-separated: `dead,cancelled`).
/// - Throws: ``CLIError/usage(_:)`` naming the unknown state and the known ones.
func parseStates(_ values: [String]) throws -> [TaskState] {
    var states: [TaskState] = []
    for value in values.flatMap({ $0.split(separator: ",") }) {
        let name = value.trimmingCharacters(in: .whitespaces).lowercased()
        guard let state = TaskState(rawValue: name) else {
            throw CLIError.usage("--state: unknown state '\(value)'; expected one of \(stateNames.joined(separator: ", "))")
        }
        if !states.contains(state) { states.append(state) }
    }
    return states
}

/// Reads the JSON text of an option, checking it parses.
/// - Throws: ``CLIError/usage(_:)`` with the parser's reason.
func checkJSON(_ text: String, field: String) throws {
    do {
        _ = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    } catch {
        let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        throw CLIError.usage("\(field): not valid JSON (\(reason)): \(text.prefix(80))")
    }
}

/// The whole contents of the file at `path`, or of standard input for `-`.
/// - Throws: ``CLIError/usage(_:)`` as `FIELD: cannot read PATH: REASON` (no such file, a directory,
///   permission denied, …); without `field`, `cannot read PATH: REASON`.
func readInput(_ path: String, field: String? = nil) throws -> Data {
    let prefix = field.map { "\($0): " } ?? ""
    if path == "-" {
        do {
            return try FileHandle.standardInput.readToEnd() ?? Data()
        } catch {
            throw CLIError.usage("\(prefix)cannot read standard input: \(errorReason(error))")
        }
    }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    if descriptor < 0 {
        let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
        throw CLIError.usage("\(prefix)cannot read \(path): \(reason)")
    }
    let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    var status = stat()
    if fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFDIR {
        throw CLIError.usage("\(prefix)cannot read \(path): it is a directory")
    }
    do {
        return try handle.readToEnd() ?? Data()
    } catch {
        throw CLIError.usage("\(prefix)cannot read \(path): \(errorReason(error))")
    }
}

/// The POSIX reason of a file error (`Permission denied`), else its description.
private func errorReason(_ error: any Error) -> String {
    let nsError = error as NSError
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
    return nsError.localizedDescription
}

/// How a command uses its database, whichever store holds it.
enum DatabaseAccess {
    /// Read and write, creating the database when needed and applying pending migrations (SQLite: the file;
    /// PostgreSQL: Rota's tables, in the schema the URL names).
    case create
    /// Read and write an existing database whose schema is current; never creates one.
    case existing
    /// Queries only: never creates or migrates anything.
    case readOnly
}

extension GlobalOptions {
    /// True when `--db` (or `ROTA_DB`) is a PostgreSQL URL (`postgres://`, `postgresql://`), not a file.
    var isPostgres: Bool { PostgresTaskStore.Configuration.isURL(db) }

    /// `--db` as messages name it: the path, or the URL with its password hidden.
    var displayName: String { isPostgres ? PostgresTaskStore.Configuration.redacted(db) : db }

    /// The PostgreSQL store's configuration that the `--db` URL describes.
    /// - Throws: ``CLIError/usage(_:)`` naming what is wrong with the URL (a malformed URL, an unknown option).
    func postgresConfiguration(_ access: PostgresTaskStore.Configuration.Access) throws -> PostgresTaskStore.Configuration {
        do {
            return try PostgresTaskStore.Configuration(url: db, access: access)
        } catch let error as RotaError where error.code == .invalidInput {
            throw CLIError.usage("--db: \(error.message)")
        }
    }

    /// Opens the database `--db` names, SQLite for a path and PostgreSQL for a URL, checked (and for `.create`,
    /// migrated) before it returns. The caller closes it (``closeStore(_:)``); ``withStore(_:durability:quickCheck:_:)``
    /// does both.
    /// - Parameters:
    ///   - durability: SQLite's `synchronous` setting; PostgreSQL's is the server's (the store asks for
    ///     `synchronous_commit=on`).
    ///   - quickCheck: SQLite's `quick_check` at open (default: for writers only).
    /// - Throws: ``CLIError/usage(_:)`` for a bad URL; ``RotaError`` when the database is missing, refused or
    ///   (PostgreSQL) cannot be reached, naming the place without its password.
    func openAnyStore(_ access: DatabaseAccess, durability: Durability = .full, quickCheck: Bool? = nil) async throws -> any TaskStore {
        guard isPostgres else {
            let mode: SQLiteTaskStore.Access = switch access {
            case .create: .create
            case .existing: .existing
            case .readOnly: .readOnly
            }
            return try openStore(mode, durability: durability, quickCheck: quickCheck)
        }
        // Queries use the store's `.readOnly`: it checks that the schema is current and changes nothing.
        let mode: PostgresTaskStore.Configuration.Access = switch access {
        case .create: .migrate
        case .existing: .existing
        case .readOnly: .readOnly
        }
        return try await openPostgres(mode)
    }

    /// Opens the PostgreSQL store the `--db` URL names: checks that the server answers (at once, with its
    /// reason, where the store's pool would wait a minute for its circuit breaker), then, with `checkSchema`,
    /// waits for the store's schema check (and migration, for `.migrate`).
    /// - Throws: ``CLIError/usage(_:)`` for a bad URL; ``RotaError`` naming the place, never the password.
    func openPostgres(_ access: PostgresTaskStore.Configuration.Access, checkSchema: Bool = true) async throws -> PostgresTaskStore {
        let store = PostgresTaskStore(try postgresConfiguration(access))
        do {
            try await store.checkConnection()
            if checkSchema { try await store.checkSchema() }
            return store
        } catch {
            await store.close()
            throw error
        }
    }

    /// Opens the database (see ``openAnyStore(_:durability:quickCheck:)``), runs `body` with it and closes it,
    /// also when `body` throws.
    func withStore<T>(_ access: DatabaseAccess, durability: Durability = .full, quickCheck: Bool? = nil,
                      _ body: (any TaskStore) async throws -> T) async throws -> T {
        let store = try await openAnyStore(access, durability: durability, quickCheck: quickCheck)
        do {
            let value = try await body(store)
            await closeStore(store)
            return value
        } catch {
            await closeStore(store)
            throw error
        }
    }

    /// Opens the PostgreSQL database the `--db` URL names, runs `body` with it and closes it, also when `body`
    /// throws. For what only the PostgreSQL store has (its schema's status, its count checks).
    func withPostgres<T>(_ access: PostgresTaskStore.Configuration.Access,
                         _ body: (PostgresTaskStore) async throws -> T) async throws -> T {
        let store = try await openPostgres(access)
        do {
            let value = try await body(store)
            await store.close()
            return value
        } catch {
            await store.close()
            throw error
        }
    }
}

/// Closes what a store holds open beyond its lifetime in this process: a PostgreSQL store's pool of
/// connections (a SQLite store closes its file when released).
func closeStore(_ store: any TaskStore) async {
    if let store = store as? PostgresTaskStore { await store.close() }
}

/// The `--json` flag every query command takes.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (snake_case fields, ISO-8601 UTC instants) instead of a table.")
    var json = false
}
