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
    /// and waits for it without blocking a thread (tests share Swift's small cooperative pool with the
    /// scheduler's timing-sensitive tests). stdout and stderr go to files, so large outputs never block on a pipe.
    /// `input` is its standard input (from a file; none: `/dev/null`); `fileSizeLimit` (bytes, a
    /// multiple of 512) caps every file it writes, as `ulimit -f` does.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil,
                    fileSizeLimit: Int? = nil, timeout: Duration = .seconds(300)) async throws -> CLIResult {
        try await start(arguments, environment: environment, input: input, fileSizeLimit: fileSizeLimit).finish(timeout: timeout)
    }

    /// The bytes in one unit of the shell's `ulimit -f` (512 in dash and POSIX shells, 1024 in bash),
    /// measured: a child of a shell limited to 8 units writes what it may of a larger file.
    static let ulimitUnit: Int = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-ulimit-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let probe = directory.appendingPathComponent("probe").path
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "ulimit -f 8; head -c 100000 /dev/zero > \"$0\"", probe]
        shell.standardError = FileHandle.nullDevice
        try? shell.run()
        shell.waitUntilExit()
        let size = (try? FileManager.default.attributesOfItem(atPath: probe)[.size] as? Int) ?? 4096
        return max(512, size / 8)
    }()

    /// A started `rota` process whose output is collected in files.
    final class Running: @unchecked Sendable {
        let process: Process
        let arguments: [String]
        /// The process's own working directory, holding its output files.
        let directory: URL
        var out: URL { directory.appendingPathComponent("stdout") }
        var err: URL { directory.appendingPathComponent("stderr") }

        init(process: Process, arguments: [String], directory: URL) {
            self.process = process
            self.arguments = arguments
            self.directory = directory
        }

        /// Waits (polling, without blocking a thread) for the process and returns what it did. Records an
        /// issue when the command fell back to the default `./rota.db` (a test that meant to pass --db did not).
        func finish(timeout: Duration = .seconds(300)) async throws -> CLIResult {
            let deadline = ContinuousClock.now + timeout
            while process.isRunning {
                if ContinuousClock.now > deadline {
                    process.terminate()
                    throw TestFailure("rota \(arguments.joined(separator: " ")) did not finish within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(3))
            }
            process.waitUntilExit()
            let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("rota.db").path) {
                Issue.record("rota \(arguments.joined(separator: " ")) used the default ./rota.db")
            }
            try? FileManager.default.removeItem(at: directory)
            return CLIResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
        }
    }

    /// Starts `rota ARGS…` without waiting.
    static func start(_ arguments: [String], environment: [String: String] = [:], input: Data? = nil,
                      fileSizeLimit: Int? = nil) throws -> Running {
        let process = Process()
        if let fileSizeLimit {
            // The shell sets the limit, then becomes rota (which must report EFBIG, not die of SIGXFSZ).
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -f \(fileSizeLimit / ulimitUnit) && exec \"$0\" \"$@\"", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        for key in ["ROTA_DB", "NO_COLOR", "COLUMNS", "LINES", "TERM"] { env.removeValue(forKey: key) }
        env.merge(environment) { $1 }
        process.environment = env
        // Each process runs in its own empty directory: a command that wrongly falls back to the default
        // ./rota.db never touches the repository or another test, and is reported by `wait()`.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let input {
            let stdin = directory.appendingPathComponent("stdin")
            try input.write(to: stdin)
            process.standardInput = try FileHandle(forReadingFrom: stdin)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        process.currentDirectoryURL = directory
        try process.run()
        return Running(process: process, arguments: arguments, directory: directory)
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

    /// Runs `rota ARGS… --db PATH` (`--db PATH` goes before a `--`, after which everything is a command).
    @discardableResult
    func rota(_ arguments: String..., environment: [String: String] = [:]) async throws -> CLIResult {
        try await rota(arguments: arguments, environment: environment)
    }

    /// `arguments` with `--db PATH` added: at the end, or before a `--` (after which all is the command's).
    func withDatabase(_ arguments: [String]) -> [String] {
        guard let separator = arguments.firstIndex(of: "--") else { return arguments + ["--db", path] }
        return Array(arguments[..<separator]) + ["--db", path] + Array(arguments[separator...])
    }

    /// Runs `rota ARGS… --db PATH` (array form).
    @discardableResult
    func rota(arguments: [String], environment: [String: String] = [:], input: Data? = nil,
              fileSizeLimit: Int? = nil) async throws -> CLIResult {
        try await Rota.run(withDatabase(arguments), environment: environment, input: input, fileSizeLimit: fileSizeLimit)
    }

    /// A database with 100 synthetic tasks in known states: ids 1–70 succeeded, 71–80 dead (3 of 3 attempts),
    /// 81–85 cancelled, 86–98 scheduled, 99–100 running. Queue `q((id−1) mod 5)`, name `bench.((id−1) mod 20)`.
    static func seeded() async throws -> TempDatabase {
        let db = try TempDatabase()
        let result = try await db.rota("_dev", "populate", "--count", "100")
        guard result.status == 0 else { throw TestFailure("populate failed: \(result)") }
        return db
    }

    /// Enqueues a task with `rota enqueue ARGS…` and returns its id.
    func enqueue(_ arguments: String...) async throws -> Int {
        let result = try await rota(arguments: ["enqueue"] + arguments)
        guard result.status == 0, let id = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestFailure("enqueue failed: \(result)")
        }
        return id
    }

    /// The task `id` as `rota show --json` prints it.
    func task(_ id: Int) async throws -> [String: Any] {
        let result = try await rota("show", String(id), "--json")
        guard result.status == 0 else { throw TestFailure("show \(id) failed: \(result)") }
        return try result.object()
    }

    /// The state of task `id`.
    func state(_ id: Int) async throws -> String { try await task(id)["state"] as? String ?? "?" }
}

/// True when `text` contains an ANSI escape sequence.
func hasANSI(_ text: String) -> Bool { text.contains("\u{1B}[") }

/// `text` without ANSI escape sequences.
func stripANSI(_ text: String) -> String {
    text.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
}
