import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// States are coloured only when stdout is a terminal and NO_COLOR is unset.
@Suite("colour")
struct ColorTests {
    @Test func statesAreColouredOnATerminal() async throws {
        let db = try await TempDatabase.seeded()
        let output = try await runOnTerminal(["list", "--state", "dead", "--limit", "3", "--db", db.path], columns: 100, rows: 40)
        #expect(output.contains("\u{1B}[31;1mdead\u{1B}[0m"), "\(output.debugDescription)")
        let table = output.split(separator: "\n").map { stripANSI(String($0)) }.filter { !$0.contains("more match") }
        #expect(table.count == 4)
        #expect(table.allSatisfy { $0.count <= 100 }, "\(table)")
    }

    @Test func noColorTurnsColourOff() async throws {
        let db = try await TempDatabase.seeded()
        let output = try await runOnTerminal(["list", "--state", "dead", "--limit", "3", "--db", db.path], columns: 100, rows: 40,
                                       environment: ["NO_COLOR": "1"])
        #expect(output.contains("dead"))
        #expect(!hasANSI(output), "\(output.debugDescription)")
    }

    @Test func theDefaultLimitOnATerminalIsAScreenful() async throws {
        let db = try await TempDatabase.seeded()
        let output = try await runOnTerminal(["list", "--db", db.path], columns: 120, rows: 24)
        let lines = output.split(separator: "\n").filter { !$0.contains("more match") && !$0.contains("--limit") }
        #expect(lines.count == 21, "a header and 20 rows on a 24-row terminal:\n\(output)")
    }
}

/// Runs `rota ARGS…` with stdout and stderr on a pseudo-terminal of the given size; returns what it printed.
func runOnTerminal(_ arguments: [String], columns: UInt16, rows: UInt16, environment: [String: String] = [:]) async throws -> String {
    // Linux: open the multiplexer, unlock the slave (TIOCSPTLCK), and ask its number (TIOCGPTN).
    let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
    guard master >= 0 else { throw TestFailure("no pseudo-terminal: errno \(errno)") }
    defer { close(master) }
    var unlock: Int32 = 0
    var number: UInt32 = 0
    guard ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0,
          ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0 else {
        throw TestFailure("cannot set up the pseudo-terminal: errno \(errno)")
    }
    let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
    guard slave >= 0 else { throw TestFailure("cannot open /dev/pts/\(number)") }
    var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
    _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
    let process = Process()
    process.executableURL = Rota.binary
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for key in ["ROTA_DB", "NO_COLOR", "COLUMNS", "LINES"] { env.removeValue(forKey: key) }
    env["TERM"] = "xterm"
    env.merge(environment) { $1 }
    process.environment = env
    let handle = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    close(slave)
    // Read without blocking a thread: the master is non-blocking, and EIO means the child closed the terminal.
    _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    let deadline = ContinuousClock.now + .seconds(300)  // a guard against a hang, as Rota.run has
    while ContinuousClock.now < deadline {
        let count = read(master, &buffer, buffer.count)
        if count > 0 {
            data += buffer[0..<count]
        } else if count < 0 && errno == EAGAIN {
            try await Task.sleep(for: .milliseconds(5))
        } else {
            break
        }
    }
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
}
