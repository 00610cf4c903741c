import Foundation

/// Turns schedule files into the schedules a store keeps: reads a directory, validates every file, maps
/// each ``ScheduleDefinition`` to a ``ScheduleSpec`` with Rota's defaults, and syncs them into a store.
///
/// Which files are read: every regular file of the directory (not its subdirectories), in name order,
/// except hidden files (starting with `.`) and editor backups (ending with `~`). This is
/// `ScheduleFiles.load(directory:fileExtension: nil)`; `rota run --schedules`, `rota schedules` and
/// `rota schedules check` all read this way. A path naming one file reads just that file.
///
/// ```swift
/// switch try store.loadSchedules(directory: "/etc/rota/schedules") {
/// case .synced(let result, _): print("added \(result.added), removed \(result.removed)")
/// case .rejected(let errors): errors.forEach { print($0) }   // file:line:column: message
/// }
/// ```
public enum ScheduleLoading {
    /// The task a fired `exec` line enqueues: `exec`, with the payload `{"argv": [PROGRAM, ARGS…]}`.
    public static let execTaskName = "exec"
    /// The maximum number of attempts when neither `RETRIES=` nor `retries=` is set: 3.
    public static let defaultMaxAttempts = 3
    /// The priority when neither `PRIORITY=` nor `priority=` is set: 0.
    public static let defaultPriority = 0

    /// The ``ScheduleSpec`` a schedule-file definition stands for.
    ///
    /// - `exec PROGRAM ARGS…` becomes the task ``execTaskName`` with the payload `{"argv":[…]}`;
    ///   `task NAME JSON` becomes the task `NAME` with that payload.
    /// - Unset options take Rota's defaults: ``defaultMaxAttempts`` attempts, priority ``defaultPriority``,
    ///   no timeout, no jitter. Zone, queue, missed-run and overlap policies and the jitter are copied (the parser applied their defaults).
    /// - ``ScheduleSpec/source`` is `file:line`.
    /// - Parameter definition: A schedule as read by ``ScheduleFiles``.
    /// - Returns: The spec to store.
    public static func spec(for definition: ScheduleDefinition) -> ScheduleSpec {
        let taskName: String
        let payload: String
        switch definition.action {
        case .exec(let argv):
            taskName = execTaskName
            payload = execPayload(argv)
        case .task(let name, let json):
            taskName = name
            payload = json
        }
        return ScheduleSpec(
            name: definition.name, expression: definition.expression, timeZone: definition.timeZone,
            taskName: taskName, payload: payload, queue: definition.queue,
            priority: definition.priority ?? defaultPriority,
            maxAttempts: definition.maxAttempts ?? defaultMaxAttempts,
            timeout: definition.timeoutSeconds.map { .seconds($0) },
            missed: definition.missed, overlap: definition.overlap, jitter: definition.jitter,
            source: definition.file.isEmpty ? nil : "\(definition.file):\(definition.line)")
    }

    /// The payload of an `exec` task: `{"argv":[…]}`, compact, slashes unescaped (stable across loads).
    /// - Parameter argv: The program and its arguments.
    public static func execPayload(_ argv: [String]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: ["argv": argv], options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{\"argv\":[]}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The schedule files of `directory`: every regular file in it whose name does not start with `.` or
    /// end with `~`, sorted by name, each as `directory/name`. A `directory` that names a regular file
    /// gives just that file.
    /// - Throws: ``ScheduleFileError`` (line 0) when the path does not exist or cannot be read.
    public static func scheduleFiles(in directory: String) throws -> [String] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ScheduleFileError(file: directory, line: 0, column: 0,
                                    message: "no such directory; expected a directory of schedule files")
        }
        guard isDirectory.boolValue else { return [directory] }
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: directory)
        } catch {
            throw ScheduleFileError(file: directory, line: 0, column: 0,
                                    message: "cannot read the schedules directory: \(error.localizedDescription)")
        }
        let base = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        return names.sorted().compactMap { name -> String? in
            guard !name.hasPrefix("."), !name.hasSuffix("~") else { return nil }
            let path = base + "/" + name
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { return nil }
            return path
        }
    }

    /// Reads and validates every schedule file of `directory` (see ``scheduleFiles(in:)``) as one set,
    /// writing nothing.
    ///
    /// Besides the file format (checked by ``ScheduleFiles``), each schedule is checked against what a
    /// store accepts (a priority of 0 or more). Every error of every file is reported; when there is any,
    /// ``ScheduleDirectory/specs`` is still filled with the valid schedules, but nothing should be loaded.
    /// - Parameter directory: A directory of schedule files, or one file.
    /// - Returns: The files read, the valid definitions and their specs, and every error, in file and line order.
    public static func load(directory: String) -> ScheduleDirectory {
        let paths: [String]
        do {
            paths = try scheduleFiles(in: directory)
        } catch let error as ScheduleFileError {
            return ScheduleDirectory(directory: directory, files: [], definitions: [], specs: [], errors: [error])
        } catch {
            let wrapped = ScheduleFileError(file: directory, line: 0, column: 0, message: "\(error)")
            return ScheduleDirectory(directory: directory, files: [], definitions: [], specs: [], errors: [wrapped])
        }
        let (texts, readErrors) = ScheduleFiles.read(paths: paths)
        var errors = readErrors
        let parsed = ScheduleFiles.parse(files: texts)
        errors += parsed.errors
        var definitions: [ScheduleDefinition] = []
        for definition in parsed.schedules {
            if let priority = definition.priority, priority < 0 {
                let line = lineText(texts.first { $0.file == definition.file }?.contents, line: definition.line)
                errors.append(ScheduleFileError(
                    file: definition.file, line: definition.line, column: column(of: "priority=", in: line),
                    message: "priority \(priority) is below 0; expected 0 or more (higher runs first)"))
                continue
            }
            definitions.append(definition)
        }
        // Keep the order files are read in: file by file, line by line.
        let order = Dictionary(uniqueKeysWithValues: paths.enumerated().map { ($1, $0) })
        errors.sort { (order[$0.file] ?? -1, $0.line, $0.column) < (order[$1.file] ?? -1, $1.line, $1.column) }
        return ScheduleDirectory(directory: directory, files: paths, definitions: definitions,
                                 specs: definitions.map(spec(for:)), errors: errors)
    }

    /// Line `number` (1-based) of `text`, as characters.
    private static func lineText(_ text: String?, line number: Int) -> [Character] {
        guard let text, number >= 1 else { return [] }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        return number <= lines.count ? Array(lines[number - 1]) : []
    }

    /// The 1-based column where the value of option `key` (e.g. `priority=`) starts in `line`, or 1.
    private static func column(of key: String, in line: [Character]) -> Int {
        let needle = Array(key)
        guard line.count >= needle.count else { return 1 }
        for start in 0...(line.count - needle.count) where Array(line[start..<(start + needle.count)]) == needle {
            if start == 0 || line[start - 1] == " " || line[start - 1] == "\t" { return start + needle.count + 1 }
        }
        return 1
    }
}

/// What ``ScheduleLoading/load(directory:)`` read from a directory of schedule files.
public struct ScheduleDirectory: Sendable, Equatable {
    /// The directory (or file) as given.
    public var directory: String
    /// The files read, as `directory/name`, in reading order.
    public var files: [String]
    /// The valid schedules, in file and line order.
    public var definitions: [ScheduleDefinition]
    /// ``definitions`` as the specs a store keeps (see ``ScheduleLoading/spec(for:)``).
    public var specs: [ScheduleSpec]
    /// Every error, file by file and line by line; each reads `file:line:column: message`.
    public var errors: [ScheduleFileError]

    /// Creates a value.
    public init(directory: String, files: [String], definitions: [ScheduleDefinition], specs: [ScheduleSpec],
                errors: [ScheduleFileError]) {
        self.directory = directory
        self.files = files
        self.definitions = definitions
        self.specs = specs
        self.errors = errors
    }

    /// True when no file has an error: the schedules can be loaded.
    public var isValid: Bool { errors.isEmpty }
}

/// The outcome of ``SQLiteTaskStore/loadSchedules(directory:now:)``.
public enum ScheduleReload: Sendable, Equatable {
    /// The files were valid and the store now holds exactly their schedules.
    /// - Parameters:
    ///   - result: What the sync added, changed and deactivated.
    ///   - directory: What was read.
    case synced(ScheduleSyncResult, ScheduleDirectory)
    /// Some file had errors: nothing was written, the store keeps its previous schedules. Every error
    /// reads `file:line:column: message`.
    case rejected([ScheduleFileError])
}

extension TaskStore {
    /// Loads every schedule file of `directory` and, if all are valid, makes the stored schedules match them
    /// (see ``syncSchedules(_:now:firstFire:)``): new schedules get their first fire after `now`, removed
    /// ones are deactivated (their history stays).
    ///
    /// On any error nothing is written: a running scheduler keeps its last good schedules; at start-up the
    /// caller should report the errors and exit 2.
    /// - Parameters:
    ///   - directory: A directory of schedule files (see ``ScheduleLoading/scheduleFiles(in:)``), or one file.
    ///   - now: The current instant.
    /// - Returns: ``ScheduleReload/synced(_:_:)`` or ``ScheduleReload/rejected(_:)`` with every error.
    /// - Throws: ``RotaError`` when the database fails.
    public func loadSchedules(directory: String, now: Date = Date()) async throws -> ScheduleReload {
        let loaded = ScheduleLoading.load(directory: directory)
        guard loaded.isValid else { return .rejected(loaded.errors) }
        // What the store would refuse (e.g. a payload over its size limit), reported per line.
        var errors: [ScheduleFileError] = []
        for (definition, spec) in zip(loaded.definitions, loaded.specs) {
            do {
                try TaskSpec(name: spec.taskName, payload: spec.payload, queue: spec.queue, priority: spec.priority,
                             maxAttempts: spec.maxAttempts, timeout: spec.timeout).validate(maxPayloadBytes: maxPayloadBytes)
            } catch let error as RotaError {
                errors.append(ScheduleFileError(file: definition.file, line: definition.line, column: 1,
                                                message: "schedule \"\(spec.name)\": \(error.description)"))
            }
        }
        guard errors.isEmpty else { return .rejected(errors) }
        let result = try await syncSchedules(loaded.specs, now: now, firstFire: { FirePlan.firstFire(of: $0, after: now) })
        return .synced(result, loaded)
    }
}
