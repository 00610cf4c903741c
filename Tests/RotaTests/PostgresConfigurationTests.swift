import Foundation
import Testing
@testable import Rota
@testable import RotaPostgresStore

/// Reading `--db postgres://...` URLs (no server needed).
@Suite struct PostgresConfigurationTests {
    @Test func aTCPURLGivesHostPortUserPasswordAndDatabase() throws {
        let c = try PostgresTaskStore.Configuration(url: "postgres://rota:s%40cret@db.internal:5433/jobs")
        #expect(c.host == "db.internal")
        #expect(c.port == 5433)
        #expect(c.socketDirectory == nil)
        #expect(c.user == "rota")
        #expect(c.password == "s@cret")
        #expect(c.database == "jobs")
        #expect(c.schema == nil)
        #expect(c.sslMode == "prefer")
        #expect(c.listen)
        #expect(c.maxConnections == 8)
    }

    @Test(arguments: ["postgres://postgres@/rota?host=/tmp/pg", "postgresql://postgres@/rota?host=/tmp/pg",
                      "postgres://postgres@%2Ftmp%2Fpg/rota"])
    func aSocketDirectoryIsReadAsLibpqReadsIt(_ url: String) throws {
        let c = try PostgresTaskStore.Configuration(url: url)
        #expect(c.socketDirectory == "/tmp/pg")
        #expect(c.host == nil)
        #expect(c.database == "rota")
        #expect(c.clientConfiguration().unixSocketPath == "/tmp/pg/.s.PGSQL.5432")
    }

    @Test func optionsAreRead() throws {
        let c = try PostgresTaskStore.Configuration(
            url: "postgres://u@h/d?schema=tenant_a&sslmode=disable&listen=off&max_connections=3&application_name=billing&port=6543&notify_interval_ms=0")
        #expect(c.schema == "tenant_a")
        #expect(c.sslMode == "disable")
        #expect(!c.listen)
        #expect(c.maxConnections == 3)
        #expect(c.applicationName == "billing")
        #expect(c.port == 6543)
        #expect(c.notifyInterval == .zero)
        #expect(try PostgresTaskStore.Configuration(url: "postgres://u@h/d").notifyInterval == .milliseconds(20))
        let parameters = c.clientConfiguration().options.additionalStartupParameters
        #expect(parameters.contains { $0.0 == "search_path" && $0.1 == "\"tenant_a\"" })
        #expect(parameters.contains { $0.0 == "synchronous_commit" && $0.1 == "on" })
    }

    @Test(arguments: [
        ("rota.db", "not a PostgreSQL URL"),
        ("postgres://u@h/", "names no database"),
        ("postgres://u@h/d?port=99999", "not a port number"),
        ("postgres://u@h/d?sslmode=maybe", "sslmode maybe"),
        ("postgres://u@h/d?listen=sometimes", "listen=sometimes"),
        ("postgres://u@h/d?max_connections=0", "max_connections=0"),
        ("postgres://u@h/d?colour=blue", "unknown option colour"),
        ("postgres://u@h/d?notify_interval_ms=-5", "notify_interval_ms=-5"),
        ("postgres://u@h/d?schema=", "is empty"),
    ])
    func aBadURLIsRefusedNamingWhatIsWrong(_ url: String, _ mention: String) {
        #expect {
            _ = try PostgresTaskStore.Configuration(url: url)
        } throws: { error in
            guard let error = error as? RotaError else { return false }
            return error.code == .invalidInput && error.message.contains(mention)
        }
    }

    @Test func messagesNeverShowThePassword() throws {
        let text = "postgres://rota:hunter2@db/jobs?password=hunter2&sslmode=require"
        #expect(!PostgresTaskStore.Configuration.redacted(text).contains("hunter2"))
        let c = try PostgresTaskStore.Configuration(url: text)
        #expect(!c.displayName.contains("hunter2"))
    }

    @Test func theURLFormIsToldFromAFilePath() {
        #expect(PostgresTaskStore.Configuration.isURL("postgres://x/y"))
        #expect(PostgresTaskStore.Configuration.isURL("postgresql://x/y"))
        #expect(!PostgresTaskStore.Configuration.isURL("./postgres.db"))
        #expect(!PostgresTaskStore.Configuration.isURL("/var/lib/rota/rota.db"))
    }

    /// The migration splitter keeps dollar-quoted bodies, quoted strings and comments whole.
    @Test func migrationsSplitIntoStatementsAtTopLevelSemicolonsOnly() {
        let migration = PostgresMigration(version: 1, name: "t", sql: """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT ';');
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
            CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 2; END $body$;
            -- trailing comment only
            """)
        #expect(migration.statements.count == 3)
        #expect(migration.statements[0].hasSuffix("DEFAULT ';')"))
        #expect(migration.statements[1].hasSuffix("END $$"))
        #expect(migration.statements[2].hasSuffix("END $body$"))
        // Every shipped migration splits into statements that each hold SQL.
        for shipped in PostgresTaskStore.migrations {
            #expect(!shipped.statements.isEmpty)
        }
    }
}
