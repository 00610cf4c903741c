import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
@testable import RotaPostgresStore

/// A kind of store the conformance suite (and the scheduler tests) run on: how to make a fresh, empty
/// database of that kind, and how to open more handles on it.
///
/// A new store joins every conformance test by adding one line to ``all``.
struct StoreKind: Sendable, CustomTestStringConvertible, CustomStringConvertible {
    /// A short name, shown in test output (`sqlite`, `memory`).
    let name: String
    /// Makes a fresh, empty database whose files (if it has any) go in `directory`, and returns how to open
    /// a handle on it.
    private let makeDatabase: @Sendable (_ directory: URL) throws -> @Sendable () throws -> any TaskStore

    init(_ name: String, makeDatabase: @escaping @Sendable (_ directory: URL) throws -> @Sendable () throws -> any TaskStore) {
        self.name = name
        self.makeDatabase = makeDatabase
    }

    var description: String { name }
    var testDescription: String { name }

    /// Every store the conformance suite (and the scheduler tests) run on.
    static let all: [StoreKind] = [
        .sqlite,
        .memory,
    ] + (PostgresTestServer.url == nil ? [] : [.postgres])

    /// `SQLiteTaskStore` on a fresh file; every handle is a new connection to the file (as another process
    /// would open it).
    static let sqlite = StoreKind("sqlite") { directory in
        let path = directory.appending(path: "rota.db").path
        return { try SQLiteTaskStore(path: path, configuration: .init(durability: .normal, quickCheck: false)) }
    }

    /// `MemoryTaskStore`: every handle is the same instance (a store in memory has no other way in).
    static let memory = StoreKind("memory") { _ in
        let store = MemoryTaskStore()
        return { store }
    }

    /// `PostgresTaskStore` on the server `ROTA_TEST_POSTGRES_URL` names (the README's test command starts a
    /// throwaway one): each database is a fresh schema of its own, and every handle a store with a pool of its
    /// own (as another scheduler, on another host, would open it).
    static let postgres = StoreKind("postgres") { _ in
        var configuration = try PostgresTaskStore.Configuration(url: try #require(PostgresTestServer.url))
        configuration.schema = PostgresTestServer.freshSchemaName()
        configuration.maxConnections = 4
        return { [configuration] in PostgresTaskStore(configuration) }
    }

    /// A fresh, empty database of this kind, in a temporary directory of its own.
    func database() throws -> StoreDatabase {
        let directory = try StoreTempDir()
        return StoreDatabase(directory: directory, open: try makeDatabase(directory.url))
    }

    /// A fresh database and a first handle on it.
    func fixture() throws -> StoreFixtureOf {
        let database = try database()
        return StoreFixtureOf(database: database, store: try database.store())
    }
}

/// One database of some kind, with a temporary directory (its files, and scratch space for a test), removed
/// when the value is released.
final class StoreDatabase: Sendable {
    private let temporary: StoreTempDir
    private let open: @Sendable () throws -> any TaskStore

    init(directory: StoreTempDir, open: @escaping @Sendable () throws -> any TaskStore) {
        temporary = directory
        self.open = open
    }

    /// The database's temporary directory.
    var directory: URL { temporary.url }

    /// A handle on the database. Each call opens another one where the kind can (SQLite: another
    /// connection to the file; a store in memory: the same instance), as a second scheduler would.
    func store() throws -> any TaskStore { try open() }
}

/// A fresh database of one kind and the handle a conformance test works through.
struct StoreFixtureOf: Sendable {
    let database: StoreDatabase
    let store: any TaskStore

    /// Another handle on the same database (see ``StoreDatabase/store()``).
    func openAnother() throws -> any TaskStore { try database.store() }
}
