import Foundation
import PostgresNIO
import Rota

extension PostgresTaskStore {
    /// Where the database is and how to use it, usually read from a URL:
    ///
    /// ```
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?OPTIONS]
    /// postgresql://USER@/DATABASE?host=/run/postgresql          (a unix socket directory, as libpq reads it)
    /// ```
    ///
    /// Options: `host` (a socket directory, or a host name), `port`, `user`, `password`, `sslmode`
    /// (`disable`, `prefer` the default, `require`), `schema` (the PostgreSQL schema Rota's tables live in;
    /// created when missing), `application_name`, `listen` (`off` for PgBouncer in transaction mode: no
    /// LISTEN/NOTIFY, polling only), `max_connections` (the pool's size, 8 by default), `notify_interval_ms`
    /// (the shortest time between two wake-ups this process sends for one queue, 20 by default; 0 sends one per
    /// transaction).
    public struct Configuration: Sendable {
        /// How the store may use the database.
        public enum Access: Sendable {
            /// Read and write; migrations are applied when the schema is behind this binary.
            case migrate
            /// Read and write an existing, current schema; a missing or older schema is an error.
            case existing
            /// Read only: queries work, every change fails. The schema must be current.
            case readOnly
        }

        /// A TCP host name or address, nil for a unix socket.
        public var host: String?
        /// The TCP port, or the number in the socket's file name (`.s.PGSQL.PORT`).
        public var port: Int
        /// The directory holding the server's unix socket, nil for TCP.
        public var socketDirectory: String?
        /// The user to connect as.
        public var user: String
        /// Its password, if the server asks for one.
        public var password: String?
        /// The database's name.
        public var database: String
        /// The schema Rota's tables live in (nil: the server's default search path, usually `public`).
        public var schema: String?
        /// `disable`, `prefer` or `require`.
        public var sslMode: String
        /// Shown in `pg_stat_activity`.
        public var applicationName: String
        /// How the store may use the database.
        public var access: Access
        /// Use LISTEN/NOTIFY to wake schedulers at once (off: polling only, as PgBouncer's transaction mode needs).
        public var listen: Bool
        /// The most connections the store's pool opens.
        public var maxConnections: Int
        /// The largest payload accepted at enqueue, in bytes (1 MiB by default).
        public var maxPayloadBytes: Int
        /// The shortest time between two NOTIFYs this process sends for one queue (20 ms by default). A commit
        /// inside it sends none itself; one trailing NOTIFY follows at the interval's end, after that commit.
        /// Zero: every transaction that makes a task due notifies at its commit.
        public var notifyInterval: Duration = .milliseconds(20)

        /// A configuration from its parts.
        public init(host: String? = nil, port: Int = 5432, socketDirectory: String? = nil, user: String = "postgres",
                    password: String? = nil, database: String, schema: String? = nil, sslMode: String = "prefer",
                    applicationName: String = "rota", access: Access = .migrate, listen: Bool = true,
                    maxConnections: Int = 8, maxPayloadBytes: Int = 1 << 20) {
            self.host = host
            self.port = port
            self.socketDirectory = socketDirectory
            self.user = user
            self.password = password
            self.database = database
            self.schema = schema
            self.sslMode = sslMode
            self.applicationName = applicationName
            self.access = access
            self.listen = listen
            self.maxConnections = maxConnections
            self.maxPayloadBytes = maxPayloadBytes
        }

        /// True when `text` names a PostgreSQL database (`postgres://` or `postgresql://`) rather than a file.
        public static func isURL(_ text: String) -> Bool {
            text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
        }

        /// Reads a `postgres://` or `postgresql://` URL.
        /// - Throws: ``RotaError`` `.invalidInput` naming what is wrong with it.
        public init(url text: String, access: Access = .migrate) throws {
            guard Self.isURL(text) else {
                throw RotaError(.invalidInput, field: "db", "\(text) is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)")
            }
            // URLComponents wants a host; `postgres://user@/db?host=/dir` (libpq's form for a socket) has none.
            guard let components = URLComponents(string: text) else {
                throw RotaError(.invalidInput, field: "db", "\(Self.redacted(text)) is not a valid URL")
            }
            var options: [String: String] = [:]
            for item in components.queryItems ?? [] {
                guard let value = item.value else {
                    throw RotaError(.invalidInput, field: "db", "option \(item.name) in \(Self.redacted(text)) has no value (write \(item.name)=VALUE)")
                }
                options[item.name] = value
            }
            let known: Set = ["host", "port", "user", "password", "sslmode", "schema", "application_name", "listen",
                              "max_connections", "dbname", "notify_interval_ms"]
            if let unknown = options.keys.sorted().first(where: { !known.contains($0) }) {
                throw RotaError(.invalidInput, field: "db", """
                    unknown option \(unknown) in \(Self.redacted(text)); known: \(known.sorted().joined(separator: ", "))
                    """)
            }
            var database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            database = database.removingPercentEncoding ?? database
            if let name = options["dbname"] { database = name }
            if database.isEmpty || database.contains("/") {
                throw RotaError(.invalidInput, field: "db", "\(Self.redacted(text)) names no database (postgres://USER@HOST/DATABASE)")
            }
            var port = 5432
            if let value = components.port { port = value }
            if let value = options["port"] {
                guard let number = Int(value), (1...65535).contains(number) else {
                    throw RotaError(.invalidInput, field: "db", "port \(value) in \(Self.redacted(text)) is not a port number")
                }
                port = number
            }
            var host = components.host.flatMap { $0.isEmpty ? nil : ($0.removingPercentEncoding ?? $0) }
            var socketDirectory: String?
            if let value = options["host"] {
                if value.hasPrefix("/") { socketDirectory = value; host = nil } else { host = value }
            } else if let value = host, value.hasPrefix("/") {
                socketDirectory = value
                host = nil
            }
            if host == nil && socketDirectory == nil {
                // libpq's default: the local socket directory Debian's server uses.
                socketDirectory = "/var/run/postgresql"
            }
            let sslMode = options["sslmode"] ?? "prefer"
            guard ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(sslMode) else {
                throw RotaError(.invalidInput, field: "db", "sslmode \(sslMode) in \(Self.redacted(text)) is not one of disable, prefer, require")
            }
            var listen = true
            if let value = options["listen"] {
                switch value.lowercased() {
                case "on", "true", "1", "yes": listen = true
                case "off", "false", "0", "no": listen = false
                default: throw RotaError(.invalidInput, field: "db", "listen=\(value) in \(Self.redacted(text)) is not on or off")
                }
            }
            var maxConnections = 8
            if let value = options["max_connections"] {
                guard let number = Int(value), number >= 1, number <= 1000 else {
                    throw RotaError(.invalidInput, field: "db", "max_connections=\(value) in \(Self.redacted(text)) is not a number from 1 to 1000")
                }
                maxConnections = number
            }
            var notifyInterval = Duration.milliseconds(20)
            if let value = options["notify_interval_ms"] {
                guard let number = Int(value), number >= 0, number <= 60_000 else {
                    throw RotaError(.invalidInput, field: "db", "notify_interval_ms=\(value) in \(Self.redacted(text)) is not a number of milliseconds from 0 to 60000")
                }
                notifyInterval = .milliseconds(number)
            }
            let user = options["user"] ?? components.user?.removingPercentEncoding ?? components.user
                ?? ProcessInfo.processInfo.environment["PGUSER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "postgres"
            let password = options["password"] ?? components.password?.removingPercentEncoding ?? components.password
                ?? ProcessInfo.processInfo.environment["PGPASSWORD"]
            if let schema = options["schema"], schema.isEmpty {
                throw RotaError(.invalidInput, field: "db", "schema= in \(Self.redacted(text)) is empty")
            }
            self.init(host: host, port: port, socketDirectory: socketDirectory, user: user, password: password,
                      database: database, schema: options["schema"], sslMode: sslMode,
                      applicationName: options["application_name"] ?? "rota", access: access, listen: listen,
                      maxConnections: maxConnections)
            self.notifyInterval = notifyInterval
        }

        /// The URL without its password, for messages.
        public static func redacted(_ text: String) -> String {
            guard var components = URLComponents(string: text), components.password != nil else { return text }
            components.password = "***"
            var items = components.queryItems
            items = items?.map { $0.name == "password" ? URLQueryItem(name: "password", value: "***") : $0 }
            components.queryItems = items
            return components.string ?? text
        }

        /// Where the store connects, for messages (`postgres@/run/postgresql:5432/rota`, no password).
        public var displayName: String {
            let place = socketDirectory.map { "\($0) (port \(port))" } ?? "\(host ?? "?"):\(port)"
            return "PostgreSQL database \(database) at \(place)" + (schema.map { ", schema \($0)" } ?? "")
        }

        /// The client's configuration.
        func clientConfiguration() -> PostgresClient.Configuration {
            var configuration: PostgresClient.Configuration
            if let socketDirectory {
                configuration = .init(unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user,
                                      password: password, database: database)
            } else {
                let tls: PostgresClient.Configuration.TLS
                switch sslMode {
                case "disable", "allow": tls = .disable
                case "require", "verify-ca", "verify-full":
                    var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                    if sslMode == "require" { tlsConfiguration.certificateVerification = .none }
                    tls = .require(tlsConfiguration)
                default:
                    var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                    tlsConfiguration.certificateVerification = .none
                    tls = .prefer(tlsConfiguration)
                }
                configuration = .init(host: host ?? "localhost", port: port, username: user, password: password,
                                      database: database, tls: tls)
            }
            configuration.options.maximumConnections = maxConnections
            configuration.options.minimumConnections = 0
            configuration.options.connectTimeout = .seconds(10)
            var parameters: [(String, String)] = [("application_name", applicationName),
                                                  // An acknowledged enqueue or result is on disk (the server's default,
                                                  // asked for in case the server or database sets it off).
                                                  ("synchronous_commit", "on")]
            if let schema { parameters.append(("search_path", Self.quotedIdentifier(schema))) }
            configuration.options.additionalStartupParameters = parameters
            return configuration
        }

        /// `name` as a quoted SQL identifier.
        static func quotedIdentifier(_ name: String) -> String {
            "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
    }
}
