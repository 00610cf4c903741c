import Foundation
import Testing

/// What one run of the `rota` binary did.
struct CLIResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }

    /// stdout parsed as JSON.
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [.fragmentsAllowed])
    }

    /// stdout parsed as a JSON object.
    func object() throws -> [String: Any] {
        guard let object = try json() as? [String: Any] else { throw TestFailure("stdout is not a JSON object: \(self)") }
        return object
    }

    /// stdout parsed as a JSON array of objects.
    func objects() throws -> [[String: Any]] {
        guard let array = try json() as? [[String: Any]] else { throw TestFailure("stdout is not a JSON array of objects: \(self)") }
        return array
    }

    /// stdout's lines, without the trailing empty one.
    var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs the built `rota` executable as a subprocess.
enum Rota {
    /// The `rota` binary: `ROTA_BINARY` if set, else the one beside the running test bundle
    /// (`.build/<triple>/debug/rota`), else `.build/debug/rota` under the package root.
    static let binary: URL = {
        let fm = FileManager.default
        if let path = ProcessInfo.processInfo.environment["ROTA_BINARY"], fm.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        var candidates: [URL] = []
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        candidates.append(exe.deletingLastPathComponent().appendingPathComponent("rota"))
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(URL(fileURLWithPath: bundle.bundlePath).deletingLastPathComponent().appendingPathComponent("rota"))
        }
        var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while root.path != "/", !fm.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root = root.deletingLastPathComponent()
        }
        candidates.append(root.appendingPathComponent(".build/debug/rota"))
        var isDirectory: ObjCBool = false
        for candidate in candidates
        where fm.fileExists(atPath: candidate.path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && fm.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        return candidates[candidates.count - 1]
    }()

    /// Runs `rota ARGS…` with a clean environment (no ROTA_DB, NO_COLOR, COLUMNS, LINES or TERM unless given)
    /// and waits for it. stdout and stderr go to files, so large outputs never block on a pipe.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(300)) throws -> CLIResult {
        let running = try start(arguments, environment: environment)
        let deadline = ContinuousClock.now + timeout
        while running.process.isRunning {
            if ContinuousClock.now > deadline {
                running.process.terminate()
                throw TestFailure("rota \(arguments.joined(separator: " ")) did not finish within \(timeout)")
            }
            usleep(2_000)
        }
        return running.wait()
    }

    /// A started `rota` process whose output is collected in files.
    final class Running: @unchecked Sendable {
        let process: Process
        let out: URL
        let err: URL

        init(process: Process, out: URL, err: URL) {
            self.process = process
            self.out = out
            self.err = err
        }

        /// Waits for the process and returns what it did.
        func wait() -> CLIResult {
            process.waitUntilExit()
            let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
            return CLIResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
        }
    }

    /// Starts `rota ARGS…` without waiting.
    static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for key in ["ROTA_DB", "NO_COLOR", "COLUMNS", "LINES", "TERM"] { env.removeValue(forKey: key) }
        env.merge(environment) { $1 }
        process.environment = env
        let tmp = FileManager.default.temporaryDirectory
        let id = UUID().uuidString
        let out = tmp.appendingPathComponent("rota-test-\(id).out")
        let err = tmp.appendingPathComponent("rota-test-\(id).err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        // A command that wrongly falls back to the default ./rota.db must not touch the repository.
        process.currentDirectoryURL = tmp
        try process.run()
        return Running(process: process, out: out, err: err)
    }
}

/// A temporary directory holding one test's database, removed when released.
final class TempDatabase: @unchecked Sendable {
    let directory: URL
    /// The database path (not created until a command creates it).
    let path: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("rota.db").path
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// Runs `rota ARGS… --db PATH`.
    @discardableResult
    func rota(_ arguments: String..., environment: [String: String] = [:]) throws -> CLIResult {
        try Rota.run(withDatabase(arguments), environment: environment)
    }

    /// `arguments` with `--db PATH` added: at the end, or before a `--` (after which all is the command's).
    func withDatabase(_ arguments: [String]) -> [String] {
        guard let separator = arguments.firstIndex(of: "--") else { return arguments + ["--db", path] }
        return Array(arguments[..<separator]) + ["--db", path] + Array(arguments[separator...])
    }

    /// Runs `rota ARGS… --db PATH` (array form).
    @discardableResult
    func rota(arguments: [String], environment: [String: String] = [:]) throws -> CLIResult {
        try Rota.run(withDatabase(arguments), environment: environment)
    }

    /// A database with 100 synthetic tasks in known states: ids 1–70 succeeded, 71–80 dead (3 of 3 attempts),
    /// 81–85 cancelled, 86–98 scheduled, 99–100 running. Queue `q((id−1) mod 5)`, name `bench.((id−1) mod 20)`.
    static func seeded() throws -> TempDatabase {
        let db = try TempDatabase()
        let result = try db.rota("_dev", "populate", "--count", "100")
        guard result.status == 0 else { throw TestFailure("populate failed: \(result)") }
        return db
    }

    /// Enqueues a task with `rota enqueue ARGS…` and returns its id.
    func enqueue(_ arguments: String...) throws -> Int {
        let result = try rota(arguments: ["enqueue"] + arguments)
        guard result.status == 0, let id = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("enqueue failed: \(result)")
        }
        return id
    }

    /// The task `id` as `rota show --json` prints it.
    func task(_ id: Int) throws -> [String: Any] {
        let result = try rota("show", String(id), "--json")
        guard result.status == 0 else { throw TestFailure("show \(id) failed: \(result)") }
        return try result.object()
    }

    /// The state of task `id`.
    func state(_ id: Int) throws -> String { try task(id)["state"] as? String ?? "?" }
}

/// True when `text` contains an ANSI escape sequence.
func hasANSI(_ text: String) -> Bool { text.contains("\u{1B}[") }

/// `text` without ANSI escape sequences.
func stripANSI(_ text: String) -> String {
    text.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
}
