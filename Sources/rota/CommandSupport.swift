import ArgumentParser
import Foundation
import Rota
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

extension GlobalOptions {
    /// Opens the database for queries: read-only, never created. A missing file is reported (exit 1).
    func openForReading() throws -> SQLiteTaskStore {
        try openStore(.readOnly)
    }

    /// Opens an existing database for an operation that writes (retry, cancel, purge). Never creates one.
    func openForWriting() throws -> SQLiteTaskStore {
        try openStore(.existing, quickCheck: false)
    }
}

/// The `--json` flag every query command takes.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON (snake_case fields, ISO-8601 UTC instants) instead of a table.")
    var json = false
}
