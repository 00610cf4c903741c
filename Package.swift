// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "Rota",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Rota", targets: ["Rota"]),
        .library(name: "RotaSQLiteStore", targets: ["RotaSQLiteStore"]),
        .library(name: "RotaPostgresStore", targets: ["RotaPostgresStore"]),
        .library(name: "RotaCron", targets: ["RotaCron"]),
        .executable(name: "rota", targets: ["rota"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The C module: libsqlite3 from the system (Debian: libsqlite3-dev).
        .systemLibrary(
            name: "CSQLite",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // A thin, safe Swift layer over SQLite: connections, cached statements, transactions, migrations.
        .target(
            name: "RotaSQLite",
            dependencies: ["CSQLite"],
            swiftSettings: strict
        ),
        // Cron expressions, next-fire computation in time zones, schedule files. Foundation only.
        .target(
            name: "RotaCron",
            swiftSettings: strict
        ),
        // Turns migrations/*.sql into a Swift source at build time, so the binary carries its schema.
        .executableTarget(
            name: "RotaMigrationsGen",
            swiftSettings: strict
        ),
        .plugin(
            name: "RotaMigrationsPlugin",
            capability: .buildTool(),
            dependencies: ["RotaMigrationsGen"]
        ),
        // The core: the model, the store protocols, validation, the scheduler, its engine and executors, the
        // schedule service and the in-memory store. No database: the compiler keeps SQLite out.
        .target(
            name: "Rota",
            dependencies: [
                "RotaCron",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The SQLite store: SQLiteTaskStore, all its SQL, and the migrations carried in the binary.
        .target(
            name: "RotaSQLiteStore",
            dependencies: ["Rota", "RotaSQLite"],
            swiftSettings: strict,
            plugins: ["RotaMigrationsPlugin"]
        ),
        // The PostgreSQL store: PostgresTaskStore on postgres-nio, all its SQL, its migrations (migrations/postgres).
        .target(
            name: "RotaPostgresStore",
            dependencies: [
                "Rota",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict,
            plugins: ["RotaMigrationsPlugin"]
        ),
        // The admin CLI and `rota run`.
        .executableTarget(
            name: "rota",
            dependencies: [
                "Rota",
                "RotaSQLiteStore",
                "RotaPostgresStore",
                "RotaSQLite",
                "RotaCron",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `rota bench --db postgres://...` drops the schemas it made (the store has no method for it).
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "RotaSQLiteTests", dependencies: ["RotaSQLite"], swiftSettings: strict),
        .testTarget(name: "RotaCronTests", dependencies: ["RotaCron"], swiftSettings: strict),
        .testTarget(
            name: "RotaTests",
            dependencies: [
                "Rota",
                "RotaSQLiteStore",
                "RotaPostgresStore",
                "RotaSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // End-to-end: runs the built `rota` binary against real database files and PostgreSQL databases
        // (PostgresNIO: to damage what `rota check` checks, bypassing Rota).
        .testTarget(
            name: "RotaCLITests",
            dependencies: [
                "rota", "Rota", "RotaSQLiteStore", "RotaPostgresStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
