#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Rota
import RotaSQLiteStore

/// What the terminal on standard output can do: its size, and whether to colour.
struct Terminal: Sendable {
    /// True when standard output is a terminal.
    var isTTY: Bool
    /// The width to fit tables in; nil means no limit (output piped, no `COLUMNS`).
    var width: Int?
    /// The number of rows, when known.
    var height: Int?
    /// Colour states: only on a terminal, and never with `NO_COLOR` set (to anything).
    var colors: Bool

    /// The terminal standard output is attached to, read from the environment and `TIOCGWINSZ`.
    static var current: Terminal {
        let env = ProcessInfo.processInfo.environment
        let tty = isatty(STDOUT_FILENO) == 1
        var width: Int? = nil
        var height: Int? = nil
        if tty {
            var size = winsize()
            if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 {
                if size.ws_col > 0 { width = Int(size.ws_col) }
                if size.ws_row > 0 { height = Int(size.ws_row) }
            }
        }
        if let columns = env["COLUMNS"].flatMap({ Int($0) }), columns > 0 { width = columns }
        if let lines = env["LINES"].flatMap({ Int($0) }), lines > 0 { height = lines }
        if tty, width == nil { width = 80 }
        let noColor = env["NO_COLOR"] != nil
        return Terminal(isTTY: tty, width: width, height: height, colors: tty && !noColor && env["TERM"] != "dumb")
    }

    /// How many rows a listing shows by default: a screenful (less a header and a hint line).
    var screenful: Int { max(10, (height ?? 26) - 4) }

    /// `text` in the colour of `state` (or plain when colours are off).
    func paint(_ text: String, state: TaskState) -> String {
        guard colors else { return text }
        let code: String
        switch state {
        case .scheduled: code = "36"  // cyan
        case .running: code = "33"  // yellow
        case .succeeded: code = "32"  // green
        case .dead: code = "31;1"  // bold red
        case .cancelled: code = "90"  // grey
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    /// `text` in the colour of a worker status or an attempt outcome (or plain).
    func paint(_ text: String, code: String) -> String {
        colors ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    /// `text` in bold (headers), or plain.
    func bold(_ text: String) -> String { colors ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
}

/// The colour code of an attempt outcome.
func outcomeColor(_ outcome: AttemptOutcome) -> String {
    switch outcome {
    case .succeeded: "32"
    case .failed, .timedOut: "31"
    case .lost: "35"
    case .cancelled: "90"
    }
}

/// An aligned text table that fits a width: flexible columns are shortened (with `…`), then the
/// least important columns are dropped.
struct Table {
    /// One column.
    struct Column {
        var title: String
        /// Right-align (numbers).
        var right: Bool = false
        /// May be shortened down to `minWidth` to fit.
        var flexible: Bool = false
        var minWidth: Int = 8
        /// Columns with a higher number are dropped first when the table cannot fit; 0 is never dropped.
        var dropOrder: Int = 0
    }

    /// One cell: its text, and an optional colouring applied after padding (so widths stay right).
    struct Cell: ExpressibleByStringLiteral {
        var text: String
        var paint: (@Sendable (String) -> String)?

        init(_ text: String, paint: (@Sendable (String) -> String)? = nil) {
            self.text = text
            self.paint = paint
        }

        init(stringLiteral value: String) { self.init(value) }
    }

    var columns: [Column]
    var rows: [[Cell]] = []

    init(_ columns: [Column]) { self.columns = columns }

    mutating func append(_ row: [Cell]) { rows.append(row) }

    /// The table as lines, fitted to `width` (nil: no limit). Two spaces between columns.
    func render(width: Int?, bold: (String) -> String = { $0 }) -> [String] {
        let gap = 2
        var visible = Array(columns.indices)
        var widths = columns.indices.map { index in
            rows.reduce(Self.length(columns[index].title)) { max($0, Self.length(Self.oneLine($1[index].text))) }
        }
        if let width {
            func total() -> Int { visible.reduce(0) { $0 + widths[$1] } + gap * max(0, visible.count - 1) }
            while total() > width {
                // Shorten the widest flexible column that can still shrink.
                let shrinkable = visible.filter { columns[$0].flexible && widths[$0] > columns[$0].minWidth }
                if let widest = shrinkable.max(by: { widths[$0] < widths[$1] }) {
                    widths[widest] = max(columns[widest].minWidth, widths[widest] - (total() - width))
                    continue
                }
                // Drop the most droppable column.
                guard let drop = visible.filter({ columns[$0].dropOrder > 0 }).max(by: { columns[$0].dropOrder < columns[$1].dropOrder })
                else { break }
                visible.removeAll { $0 == drop }
            }
        }
        func line(_ cells: [Cell], header: Bool) -> String {
            var parts: [String] = []
            for (position, index) in visible.enumerated() {
                let last = position == visible.count - 1
                var text = Self.truncate(Self.oneLine(cells[index].text), to: widths[index])
                let padding = String(repeating: " ", count: widths[index] - Self.length(text))
                if header { text = bold(text) } else if let paint = cells[index].paint { text = paint(text) }
                if columns[index].right {
                    parts.append(padding + text)
                } else {
                    parts.append(last ? text : text + padding)
                }
            }
            let line = parts.joined(separator: String(repeating: " ", count: gap))
            return String(line.reversed().drop(while: { $0 == " " }).reversed())
        }
        return [line(columns.map { Cell($0.title) }, header: true)] + rows.map { line($0, header: false) }
    }

    /// Printed width of `text` (one column per character; good enough for the text Rota prints).
    static func length(_ text: String) -> Int { text.count }

    /// `text` on one line: newlines and tabs become spaces.
    static func oneLine(_ text: String) -> String {
        guard text.contains(where: { $0.isNewline || $0 == "\t" }) else { return text }
        return text.split(whereSeparator: { $0.isNewline || $0 == "\t" }).joined(separator: " ")
    }

    /// `text` cut to `width` characters, ending in `…` when cut.
    static func truncate(_ text: String, to width: Int) -> String {
        if text.count <= width { return text }
        if width <= 1 { return String(text.prefix(width)) }
        return String(text.prefix(width - 1)) + "…"
    }
}

/// Writes text to standard output (no buffering surprises when mixed with stderr).
func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// Writes lines to standard output.
func writeLines(_ lines: [String]) {
    if lines.isEmpty { return }
    writeOut(lines.joined(separator: "\n") + "\n")
}

/// Writes one line to standard error, without the `rota:` prefix (notes rather than errors).
func printNote(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
