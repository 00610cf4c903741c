import Foundation

/// A mistake in a schedule file, located by file, line and column.
///
/// The ``description`` reads `file:line:column: message`, the form editors and compilers use.
public struct ScheduleFileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file (as named to the parser).
    public var file: String
    /// The 1-based line, or 0 when the error is about the whole file or directory.
    public var line: Int
    /// The 1-based column (in characters) where the wrong part starts, or 0 with ``line`` 0.
    public var column: Int
    /// What was wrong and what was expected.
    public var message: String

    /// Creates an error.
    public init(file: String, line: Int, column: Int, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// `file:line:column: message` (or `file: message` when there is no line).
    public var description: String {
        line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)"
    }
}

/// Reads schedule files: a crontab-like format, one schedule a line.
///
/// ```
/// # Comments start with '#'. Settings apply to the schedule lines below them.
/// TZ=Europe/Berlin
/// QUEUE=maintenance
///
/// # when         name            [options]                what
/// 0 3 * * *      nightly-backup  retries=5 timeout=30m    exec /usr/local/bin/backup --full
/// */15 * * * *   refresh-feeds   missed=once overlap=skip task feeds.refresh {"limit": 100}
/// @hourly        rotate-logs                              exec logrotate /etc/logrotate.conf
/// ```
///
/// - Settings (`KEY=value`, keys in capitals): `TZ` (alias `CRON_TZ`; an IANA zone, default `UTC`), `QUEUE`
///   (default `default`), `RETRIES` (alias `ATTEMPTS`; the maximum number of attempts, ≥ 1), `TIMEOUT`
///   (a duration), `MISSED` (`skip` | `once` | `all` | `all:N`), `OVERLAP` (`allow` | `skip`), `PRIORITY`
///   (an integer), `JITTER` (a duration: each fire's task is delayed by a fixed pseudo-random amount up to it).
///   An empty value (`TIMEOUT=`) restores the default.
/// - Schedule lines: `WHEN NAME [key=value …] ACTION`. WHEN is 5 cron fields, 6 (leading seconds), or an
///   `@` macro. NAME is letters, digits, `.`, `_`, `-` (starting with a letter or digit) and is unique across
///   all files. Options are the settings in lower case (`tz=`, `queue=`, `retries=`, `attempts=`,
///   `timeout=`, `missed=`, `overlap=`, `priority=`, `jitter=`) and apply to that line only. A jitter must be
///   at most 1 day and shorter than the shortest gap between two fires of the line's expression.
/// - ACTION is `exec PROGRAM [ARGS…]`, split like a shell would (single and double quotes, backslash) but
///   run without one (write `exec sh -c '…'` for pipes and variables), or `task TASKNAME [JSON]` with a
///   JSON payload (default `{}`).
/// - Durations: a number with a unit `s`, `m`, `h` or `d`, or several (`90s`, `15m`, `2h`, `7d`, `1h30m`).
///
/// Every error in a file is reported (one bad line does not hide the others), with its file, line and column.
public enum ScheduleFiles {
    /// The queue schedules use when no `QUEUE` is set: `default`.
    public static let defaultQueue = "default"

    /// Parses one schedule file.
    /// - Parameters:
    ///   - contents: The file's text.
    ///   - file: The name to report in errors and in ``ScheduleDefinition/file``.
    /// - Returns: The valid schedules, and every error found (in line order). Lines with errors yield no schedule.
    public static func parse(_ contents: String, file: String) -> (schedules: [ScheduleDefinition], errors: [ScheduleFileError]) {
        parse(files: [(file: file, contents: contents)])
    }

    /// Parses several schedule files as one set: schedule names must be unique across all of them.
    /// - Parameter files: Each file's name and text, in the order to read them.
    /// - Returns: The valid schedules, and every error found (file by file, in line order).
    public static func parse(files: [(file: String, contents: String)]) -> (schedules: [ScheduleDefinition], errors: [ScheduleFileError]) {
        var schedules: [ScheduleDefinition] = []
        var errors: [ScheduleFileError] = []
        var seen: [String: ScheduleDefinition] = [:]
        for (file, contents) in files {
            var parser = LineParser(file: file)
            // Any line break: \n, \r\n (one Character in Swift) or \r.
            let lines = contents.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            for (index, text) in lines.enumerated() {
                let result = parser.parseLine(Array(text), number: index + 1)
                errors += result.errors
                guard var schedule = result.schedule else { continue }
                if let first = seen[schedule.name] {
                    errors.append(ScheduleFileError(
                        file: file, line: index + 1, column: result.nameColumn,
                        message: "duplicate schedule name \"\(schedule.name)\" (first defined at \(first.file):\(first.line)); "
                            + "expected a name used by no other schedule"))
                    continue
                }
                schedule.file = file
                seen[schedule.name] = schedule
                schedules.append(schedule)
            }
        }
        return (schedules, errors)
    }

    /// Loads every schedule file of a directory (not its subdirectories), in name order, as one set.
    /// - Parameters:
    ///   - directory: The directory to read.
    ///   - fileExtension: Only files with this extension are read (default `cron`); `nil` reads every file.
    ///     Hidden files (starting with `.`) and editor backups (ending with `~`) are always ignored.
    /// - Returns: The valid schedules and every error; files are named `directory/filename` in both.
    /// - Throws: ``ScheduleFileError`` (line 0) when the directory cannot be read.
    public static func load(directory: String, fileExtension: String? = "cron") throws -> (schedules: [ScheduleDefinition], errors: [ScheduleFileError]) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw ScheduleFileError(file: directory, line: 0, column: 0, message: "cannot read the schedules directory: \(error.localizedDescription)")
        }
        var paths: [String] = []
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        for name in names.sorted() where !name.hasPrefix(".") && !name.hasSuffix("~") {
            if let ext = fileExtension, !name.hasSuffix("." + ext) { continue }
            let path = base + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            paths.append(path)
        }
        let read = read(paths: paths)
        let parsed = parse(files: read.files)
        return (parsed.schedules, read.errors + parsed.errors)
    }

    /// Reads schedule files as UTF-8 text.
    /// - Returns: the files read, and an error (line 0) for each file that cannot be read or is not UTF-8.
    public static func read(paths: [String]) -> (files: [(file: String, contents: String)], errors: [ScheduleFileError]) {
        var files: [(file: String, contents: String)] = []
        var errors: [ScheduleFileError] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                errors.append(ScheduleFileError(file: path, line: 0, column: 0, message: "cannot read the file"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                errors.append(ScheduleFileError(file: path, line: 0, column: 0, message: "is not UTF-8 text; expected a text file of schedules"))
                continue
            }
            files.append((path, text))
        }
        return (files, errors)
    }

    /// Parses a duration: one or more `<number><unit>` with unit `s`, `m`, `h` or `d` (e.g. `90s`, `1h30m`).
    /// - Returns: The whole number of seconds (greater than 0), or `nil` if the text is not a duration.
    public static func parseDuration(_ text: String) -> Int? {
        var total = 0
        var number = ""
        var sawUnit = false
        for ch in text.lowercased() {
            if ch.isASCII && ch.isNumber {
                number.append(ch)
                sawUnit = false
                continue
            }
            guard !number.isEmpty, number.count <= 9, let n = Int(number) else { return nil }
            switch ch {
            case "s": total += n
            case "m": total += n * 60
            case "h": total += n * 3600
            case "d": total += n * 86_400
            default: return nil
            }
            number = ""
            sawUnit = true
        }
        guard sawUnit, number.isEmpty, total > 0 else { return nil }
        return total
    }

    /// The longest jitter accepted (`jitter=`/`JITTER=`): 1 day, in seconds.
    public static let maximumJitterSeconds = 86_400

    /// How many consecutive fires ``shortestGap(of:in:)`` measures.
    public static let gapSampleFires = 1000

    /// The shortest time, in whole seconds, between two consecutive fires of `expression` in `zone`, measured
    /// over its first ``gapSampleFires`` fires from 2026-01-01T00:00:00Z (a fixed start, so a file's verdict
    /// does not change with the day it is checked; the sample of a daily or rarer expression spans years and
    /// their daylight-saving transitions).
    /// - Returns: the gap, or `nil` when the expression fires fewer than twice in the sample.
    public static func shortestGap(of expression: CronExpression, in zone: TimeZone) -> Int? {
        var previous = expression.next(after: Date(timeIntervalSince1970: 1_767_225_600), in: zone)
        var shortest: Int?
        for _ in 1..<gapSampleFires {
            guard let last = previous, let next = expression.next(after: last, in: zone) else { break }
            let gap = Int(next.timeIntervalSince(last).rounded())
            shortest = min(shortest ?? gap, gap)
            if gap <= 1 { break }
            previous = next
        }
        return shortest
    }

    /// Whole seconds as a duration a schedule file accepts: `90s` → `1m30s`, `3600` → `1h`, `0` → `0s`.
    public static func durationText(_ seconds: Int) -> String {
        guard seconds > 0 else { return "0s" }
        var rest = seconds
        var text = ""
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            text += "\(rest / size)\(unit)"
            rest %= size
        }
        return text
    }

    /// Splits a command line into words the way a POSIX shell would, without expanding anything:
    /// whitespace separates words; `'…'` is literal; inside `"…"` a backslash escapes `"`, `\`, `$` and `` ` ``;
    /// elsewhere a backslash escapes the next character.
    /// - Returns: The words, or the 0-based character offset of an unterminated quote (or trailing backslash).
    static func splitCommand(_ chars: ArraySlice<Character>) -> Result<[String], SplitError> {
        var words: [String] = []
        var word = ""
        var inWord = false
        var i = chars.startIndex
        while i < chars.endIndex {
            let c = chars[i]
            if c == " " || c == "\t" {
                if inWord { words.append(word); word = ""; inWord = false }
                i += 1
                continue
            }
            inWord = true
            if c == "'" {
                guard let close = chars[(i + 1)...].firstIndex(of: "'") else { return .failure(SplitError(offset: i, problem: "unterminated single quote")) }
                word += String(chars[(i + 1)..<close])
                i = close + 1
            } else if c == "\"" {
                var j = i + 1
                var closed = false
                while j < chars.endIndex {
                    let d = chars[j]
                    if d == "\"" { closed = true; break }
                    if d == "\\", j + 1 < chars.endIndex, "\"\\$`".contains(chars[j + 1]) {
                        word.append(chars[j + 1])
                        j += 2
                        continue
                    }
                    word.append(d)
                    j += 1
                }
                guard closed else { return .failure(SplitError(offset: i, problem: "unterminated double quote")) }
                i = j + 1
            } else if c == "\\" {
                guard i + 1 < chars.endIndex else { return .failure(SplitError(offset: i, problem: "backslash at the end of the line")) }
                word.append(chars[i + 1])
                i += 2
            } else {
                word.append(c)
                i += 1
            }
        }
        if inWord { words.append(word) }
        return .success(words)
    }

    struct SplitError: Error {
        let offset: Int
        let problem: String
    }
}

/// Settings in force while reading a file.
private struct Settings {
    var timeZone = "UTC"
    var queue = ScheduleFiles.defaultQueue
    var maxAttempts: Int?
    var timeoutSeconds: Int?
    var priority: Int?
    var missed = MissedRunPolicy.skip
    var overlap = OverlapPolicy.allow
    var jitterSeconds: Int?
    /// The 0-based column of the `jitter=` value on the schedule line, when the option (not the setting) set it.
    var jitterColumn: Int?
}

/// Parses lines one by one, carrying the settings down the file.
private struct LineParser {
    let file: String
    var settings = Settings()

    init(file: String) { self.file = file }

    struct LineResult {
        var schedule: ScheduleDefinition?
        var errors: [ScheduleFileError] = []
        var nameColumn = 1
    }

    struct Token {
        let text: String
        let start: Int // 0-based offset in the line
    }

    static func tokens(_ chars: [Character]) -> [Token] {
        var result: [Token] = []
        var i = 0
        while i < chars.count {
            if chars[i] == " " || chars[i] == "\t" { i += 1; continue }
            let start = i
            while i < chars.count && chars[i] != " " && chars[i] != "\t" { i += 1 }
            result.append(Token(text: String(chars[start..<i]), start: start))
        }
        return result
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIIAlnum else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIIAlnum || $0 == "." || $0 == "_" || $0 == "-" }
    }

    mutating func parseLine(_ chars: [Character], number: Int) -> LineResult {
        var result = LineResult()
        func fail(_ offset: Int, _ message: String) {
            result.errors.append(ScheduleFileError(file: file, line: number, column: offset + 1, message: message))
        }
        let tokens = LineParser.tokens(chars)
        guard let first = tokens.first, !first.text.hasPrefix("#") else { return result }

        // A setting: KEY=value or KEY = value (the key is an identifier, the value the rest of the line).
        var keyEnd = first.start
        while keyEnd < chars.count, chars[keyEnd].isASCII, chars[keyEnd].isLetter || chars[keyEnd] == "_" || (keyEnd > first.start && chars[keyEnd].isNumber) {
            keyEnd += 1
        }
        var eqIndex = keyEnd
        while eqIndex < chars.count, chars[eqIndex] == " " || chars[eqIndex] == "\t" { eqIndex += 1 }
        if keyEnd > first.start, eqIndex < chars.count, chars[eqIndex] == "=" {
            let key = String(chars[first.start..<keyEnd])
            let valueStart = eqIndex + 1
            var value = String(chars[valueStart...]).trimmingCharacters(in: .whitespaces)
            if value.count >= 2, (value.hasPrefix("\"") && value.hasSuffix("\"")) || (value.hasPrefix("'") && value.hasSuffix("'")) {
                value = String(value.dropFirst().dropLast())
            }
            let column = chars[valueStart...].firstIndex(where: { $0 != " " && $0 != "\t" }) ?? valueStart
            guard key == key.uppercased() else {
                fail(first.start, "setting \"\(key)\" must be written in capitals (\(key.uppercased())=…); expected one of \(LineParser.settingNames)")
                return result
            }
            var target = settings
            if let message = apply(key: key, value: value, to: &target, setting: true) {
                fail(message.isKeyError ? first.start : column, message.text)
            } else {
                settings = target
            }
            return result
        }

        // A schedule: WHEN NAME [options] ACTION.
        var index = 0
        var whenCount: Int
        let shape = "a schedule line is WHEN NAME [options] ACTION: 5 or 6 cron fields or an @macro, a name, "
            + "then `exec PROGRAM [ARGS…]` or `task TASKNAME [JSON]`"
        if first.text.hasPrefix("@") {
            whenCount = 1
            guard tokens.count >= 3 else {
                fail(first.start, "expected a name and an action after \"\(first.text)\"; \(shape)")
                return result
            }
        } else {
            guard tokens.count >= 7 else {
                fail(first.start, "\(shape), or a setting KEY=value; found \(tokens.count) word\(tokens.count == 1 ? "" : "s")")
                return result
            }
            whenCount = 5
            if tokens.count > 6, (try? FieldParser(.dayOfWeek).parse(tokens[5].text.uppercased())) != nil {
                whenCount = 6
                // `0 3 * * * mon exec …`: a five-field line whose name reads as a weekday.
                if tokens[6].text == "exec" || tokens[6].text == "task" {
                    fail(tokens[5].start, "the schedule name \"\(tokens[5].text)\" reads as a day-of-week field; "
                        + "expected a name that is not a weekday expression (e.g. \"\(tokens[5].text)-job\")")
                    return result
                }
            }
        }
        let whenTokens = Array(tokens[0..<whenCount])
        let whenText = whenTokens.map(\.text).joined(separator: " ")
        index = whenCount
        var expressionValid = true
        do {
            _ = try CronExpression(whenText)
        } catch let error as CronError {
            expressionValid = false
            var column = whenTokens[0].start
            if let field = error.field, whenCount > 1 {
                let order: [CronError.Field] = [.second, .minute, .hour, .dayOfMonth, .month, .dayOfWeek]
                let position = order.firstIndex(of: field)! - (whenCount == 5 ? 1 : 0)
                if position >= 0 && position < whenTokens.count { column = whenTokens[position].start }
            }
            fail(column, error.description)
        } catch {
            expressionValid = false
            fail(whenTokens[0].start, "\(error)")
        }

        guard index < tokens.count else {
            fail(chars.count, "expected a schedule name after \"\(whenText)\"")
            return result
        }
        let nameToken = tokens[index]
        result.nameColumn = nameToken.start + 1
        var nameValid = true
        if whenCount == 6, nameToken.text.allSatisfy({ "0123456789*,/-#".contains($0) }) {
            fail(nameToken.start, "found more than 6 cron fields; \(shape)")
            return result
        }
        if nameToken.text == "exec" || nameToken.text == "task" || !LineParser.isName(nameToken.text) {
            nameValid = false
            fail(nameToken.start, "\"\(nameToken.text)\" is not a valid schedule name; expected a name of letters, "
                + "digits, '.', '_' and '-' starting with a letter or digit, after the cron fields")
        }
        index += 1

        var options = settings
        var optionsValid = true
        while index < tokens.count, tokens[index].text.contains("="), tokens[index].text != "exec", tokens[index].text != "task" {
            let token = tokens[index]
            let eq = token.text.firstIndex(of: "=")!
            let key = String(token.text[..<eq])
            let value = String(token.text[token.text.index(after: eq)...])
            if let message = apply(key: key, value: value, to: &options, setting: false) {
                optionsValid = false
                fail(message.isKeyError ? token.start : token.start + key.count + 1, message.text)
            } else if key == "jitter" {
                options.jitterColumn = token.start + key.count + 1
            }
            index += 1
        }

        guard index < tokens.count else {
            fail(chars.count, "expected an action: `exec PROGRAM [ARGS…]` or `task TASKNAME [JSON]`")
            return result
        }
        let keyword = tokens[index]
        let restStart = keyword.start + keyword.text.count
        var action: ScheduleAction?
        switch keyword.text {
        case "exec":
            switch ScheduleFiles.splitCommand(chars[restStart...]) {
            case .success(let argv) where argv.isEmpty:
                fail(chars.count, "expected a program to run after `exec`")
            case .success(let argv):
                action = .exec(argv: argv)
            case .failure(let error):
                fail(error.offset, "\(error.problem) in the command; expected matching quotes")
            }
        case "task":
            guard index + 1 < tokens.count else {
                fail(chars.count, "expected a task name after `task`")
                break
            }
            let taskToken = tokens[index + 1]
            guard LineParser.isName(taskToken.text) else {
                fail(taskToken.start, "\"\(taskToken.text)\" is not a valid task name; expected letters, digits, '.', '_' and '-'")
                break
            }
            let payloadStart = taskToken.start + taskToken.text.count
            let payload = String(chars[payloadStart...]).trimmingCharacters(in: .whitespaces)
            if payload.isEmpty {
                action = .task(name: taskToken.text, payload: "{}")
            } else if (try? JSONSerialization.jsonObject(with: Data(payload.utf8), options: [.fragmentsAllowed])) == nil {
                let column = tokens.first(where: { $0.start >= payloadStart })?.start ?? payloadStart
                fail(column, "the payload of task \"\(taskToken.text)\" is not valid JSON; expected a JSON value such as {\"limit\": 100}")
            } else {
                action = .task(name: taskToken.text, payload: payload)
            }
        default:
            fail(keyword.start, "expected an option key=value or an action (`exec PROGRAM [ARGS…]` or "
                + "`task TASKNAME [JSON]`), found \"\(keyword.text)\"")
        }

        if expressionValid, optionsValid, let jitter = options.jitterSeconds,
           let expression = try? CronExpression(whenText), let zone = TimeZone(identifier: options.timeZone),
           let gap = ScheduleFiles.shortestGap(of: expression, in: zone), jitter >= gap {
            let origin = options.jitterColumn == nil ? " (from the JITTER setting above)" : ""
            fail(options.jitterColumn ?? whenTokens[0].start,
                 "jitter \(ScheduleFiles.durationText(jitter))\(origin) is not shorter than the shortest gap between two fires of "
                    + "\"\(whenText)\" (\(ScheduleFiles.durationText(gap))); expected a jitter below \(ScheduleFiles.durationText(gap)), "
                    + "so that each fire runs before the next one is due")
        }

        guard expressionValid, nameValid, optionsValid, let action, result.errors.isEmpty else { return result }
        result.schedule = ScheduleDefinition(
            name: nameToken.text, expression: whenText, timeZone: options.timeZone, queue: options.queue,
            action: action, maxAttempts: options.maxAttempts, timeoutSeconds: options.timeoutSeconds,
            priority: options.priority, missed: options.missed, overlap: options.overlap,
            jitterSeconds: options.jitterSeconds, file: file, line: number)
        return result
    }

    static let settingNames = "TZ, CRON_TZ, QUEUE, RETRIES, ATTEMPTS, TIMEOUT, MISSED, OVERLAP, PRIORITY, JITTER"
    static let optionNames = "tz, queue, retries, attempts, timeout, missed, overlap, priority, jitter"

    struct Problem {
        let text: String
        let isKeyError: Bool
    }

    /// Applies a setting (`KEY=value`) or option (`key=value`); returns the problem, if any.
    func apply(key rawKey: String, value: String, to s: inout Settings, setting: Bool) -> Problem? {
        let key = rawKey.lowercased()
        if !setting && rawKey != key {
            return Problem(text: "option \"\(rawKey)\" must be written in lower case; expected one of \(LineParser.optionNames)", isKeyError: true)
        }
        let reset = value.isEmpty && setting
        let defaults = Settings()
        switch key {
        case "tz", "cron_tz":
            if reset { s.timeZone = defaults.timeZone; return nil }
            guard TimeZone(identifier: value) != nil else {
                return Problem(text: "unknown time zone \"\(value)\"; expected an IANA zone such as UTC or Europe/Berlin", isKeyError: false)
            }
            s.timeZone = value
        case "queue":
            if reset { s.queue = defaults.queue; return nil }
            guard LineParser.isName(value) else {
                return Problem(text: "invalid queue name \"\(value)\"; expected letters, digits, '.', '_' and '-'", isKeyError: false)
            }
            s.queue = value
        case "retries", "attempts":
            if reset { s.maxAttempts = nil; return nil }
            guard let n = Int(value), n >= 1, n <= 1000 else {
                return Problem(text: "invalid \(key) \"\(value)\"; expected the maximum number of attempts, 1-1000", isKeyError: false)
            }
            s.maxAttempts = n
        case "timeout":
            if reset { s.timeoutSeconds = nil; return nil }
            guard let n = ScheduleFiles.parseDuration(value) else {
                return Problem(text: "invalid timeout \"\(value)\"; expected a duration such as 90s, 15m, 2h, 7d or 1h30m", isKeyError: false)
            }
            s.timeoutSeconds = n
        case "missed":
            if reset { s.missed = defaults.missed; return nil }
            guard let policy = MissedRunPolicy(parsing: value) else {
                return Problem(text: "invalid missed-run policy \"\(value)\"; expected skip, once, all or all:N (N 1-\(MissedRunPolicy.maximumCap))", isKeyError: false)
            }
            s.missed = policy
        case "overlap":
            if reset { s.overlap = defaults.overlap; return nil }
            guard let policy = OverlapPolicy(rawValue: value.lowercased()) else {
                return Problem(text: "invalid overlap policy \"\(value)\"; expected allow or skip", isKeyError: false)
            }
            s.overlap = policy
        case "priority":
            if reset { s.priority = nil; return nil }
            guard let n = Int(value), abs(n) <= 1_000_000 else {
                return Problem(text: "invalid priority \"\(value)\"; expected an integer", isKeyError: false)
            }
            s.priority = n
        case "jitter":
            if reset { s.jitterSeconds = nil; return nil }
            guard let n = ScheduleFiles.parseDuration(value) else {
                return Problem(text: "invalid jitter \"\(value)\"; expected a duration such as 90s, 5m or 1h30m", isKeyError: false)
            }
            guard n <= ScheduleFiles.maximumJitterSeconds else {
                return Problem(text: "jitter \"\(value)\" is too long; expected at most \(ScheduleFiles.durationText(ScheduleFiles.maximumJitterSeconds))",
                               isKeyError: false)
            }
            s.jitterSeconds = n
        default:
            return Problem(
                text: setting
                    ? "unknown setting \"\(rawKey)\"; expected one of \(LineParser.settingNames)"
                    : "unknown option \"\(rawKey)\"; expected one of \(LineParser.optionNames)",
                isKeyError: true)
        }
        return nil
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIIAlnum: Bool {
        (value >= 48 && value <= 57) || (value >= 65 && value <= 90) || (value >= 97 && value <= 122)
    }
}
