import Foundation
import PackagePlugin

/// Embeds a store's migrations into its target as a generated Swift source, so the schema travels inside the
/// binary (it works from any directory and as a lone copy): `migrations/*.sql` for the SQLite store,
/// `migrations/postgres/*.sql` for the PostgreSQL store.
@main
struct RotaMigrationsPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        var directory = context.package.directoryURL.appending(path: "migrations")
        if target.name == "RotaPostgresStore" { directory = directory.appending(path: "postgres") }
        let files = try FileManager.default
            .contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) SQL migrations",
                executable: try context.tool(named: "RotaMigrationsGen").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
