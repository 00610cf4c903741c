import Foundation
import Synchronization
import Testing

/// The PostgreSQL server the tests use, if any: `ROTA_TEST_POSTGRES_URL` (the README's test command,
/// `scripts/test`, starts a throwaway cluster and sets it). Without it the PostgreSQL cases are skipped, and
/// ``PostgresTestServerTests`` says so; with `ROTA_REQUIRE_POSTGRES=1` a missing server fails the run.
enum PostgresTestServer {
    /// The server's URL, or nil when no server was given.
    static let url: String? = {
        let value = ProcessInfo.processInfo.environment["ROTA_TEST_POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    /// True when a missing server is a failure, not a skip.
    static let required = ProcessInfo.processInfo.environment["ROTA_REQUIRE_POSTGRES"] == "1"

    private static let counter = Atomic<Int>(0)

    /// A schema name no other test of this run (or of an earlier run on the same server) uses.
    static func freshSchemaName() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return "rota_test_\(getpid())_\(Int(Date().timeIntervalSince1970))_\(n)"
    }
}

@Suite struct PostgresTestServerTests {
    /// Shows up as skipped, with the reason, when no server was given; fails when one is required.
    @Test(.enabled(if: PostgresTestServer.url != nil || PostgresTestServer.required,
                   "PostgreSQL cases skipped: ROTA_TEST_POSTGRES_URL is not set (scripts/test starts a throwaway server)"))
    func aPostgreSQLServerIsThereForTheStoreSuites() throws {
        #expect(PostgresTestServer.url != nil, "ROTA_REQUIRE_POSTGRES=1 but ROTA_TEST_POSTGRES_URL is not set")
    }
}
