import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// A fresh temporary directory, removed when the value is released. One per test, so tests run in parallel.
final class StoreTempDir: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appending(path: "rota-store-tests-\(UUID().uuidString)", directoryHint: .isDirectory)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// A path inside the directory.
    func path(_ name: String = "rota.db") -> String { url.appending(path: name).path }
}

/// A store on a real file in its own temporary directory.
struct StoreFixture {
    let dir: StoreTempDir
    let path: String
    let store: SQLiteTaskStore

    init(_ configuration: SQLiteTaskStore.Configuration = .init()) throws {
        dir = try StoreTempDir()
        path = dir.path()
        store = try SQLiteTaskStore(path: path, configuration: configuration)
    }

    /// A second, independent connection to the same file (what another process would see).
    func connection(_ mode: Connection.Mode = .readWrite, busyTimeout: Duration = .seconds(5)) throws -> Connection {
        try Connection(path: path, options: .init(mode: mode, busyTimeout: busyTimeout, quickCheck: false))
    }

    /// Every row of every table, read through a separate connection: what is committed on disk.
    func dump() throws -> StoreDump { try StoreDump(path: path) }
}

/// The full content of a Rota database, for "nothing was written" comparisons.
struct StoreDump: Equatable, CustomStringConvertible {
    var tables: [String: [[SQLiteValue]]]

    init(path: String) throws {
        let db = try Connection(path: path, options: .init(mode: .readOnly, quickCheck: false))
        let names = try db.query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") { $0.string(0) }
        var tables: [String: [[SQLiteValue]]] = [:]
        for name in names {
            let statement = try db.prepare("SELECT * FROM \"\(name)\" ORDER BY 1, 2")
            var rows: [[SQLiteValue]] = []
            while try statement.step() {
                rows.append((0..<statement.columnCount).map { statement.value($0) })
            }
            tables[name] = rows
        }
        self.tables = tables
    }

    /// Rows in `table`.
    func count(_ table: String) -> Int { tables[table]?.count ?? 0 }

    var description: String {
        tables.keys.sorted().map { "\($0): \(tables[$0]!.count) rows" }.joined(separator: ", ")
    }
}

/// Runs `body` and returns the ``RotaError`` it threw, or nil (recording an issue) when it threw none or another error.
func rotaError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async -> RotaError? {
    do {
        try await body()
        Issue.record("expected a RotaError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as RotaError {
        return error
    } catch {
        Issue.record("expected a RotaError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A whole-millisecond instant `seconds` from the current time (stored instants are milliseconds).
func instant(_ seconds: Double, from base: Date = Date()) -> Date {
    Date(unixMillis: base.addingTimeInterval(seconds).unixMillis)
}

/// The file's bytes, or nil when it does not exist.
func fileBytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

extension SQLiteTaskStore {
    /// Claims everything due in `queue` for `worker` (limit 100).
    func claimAll(_ queue: String = "default", names: [String]? = nil, worker: String = "w1",
                  leaseUntil: Date = instant(30), now: Date = Date()) async throws -> [ClaimedTask] {
        try await claim([ClaimRequest(queue: queue, names: names, limit: 100)], worker: worker, leaseUntil: leaseUntil, now: now)
    }

    /// The task, which must exist.
    func record(_ id: TaskID, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TaskRecord {
        try #require(try await task(id), "task \(id) should exist", sourceLocation: sourceLocation)
    }
}

extension Completion {
    /// The completion of `claimed` by `worker` now.
    init(_ claimed: ClaimedTask, worker: String = "w1", finishedAt: Date = instant(0), _ resolution: Resolution) {
        self.init(taskID: claimed.id, attempt: claimed.attempt, worker: worker, startedAt: claimed.startedAt,
                  finishedAt: finishedAt, resolution: resolution)
    }
}
