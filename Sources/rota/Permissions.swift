import Foundation
import Rota
#if canImport(Glibc)
import Glibc
#endif

/// The file-permission warnings of `rota check`: a database that others can read holds commands, payloads
/// and their output; a schedules directory (or file) that others can write lets them choose what runs.
enum PermissionCheck {
    /// Warnings about the SQLite database at `path` and its `-wal` and `-shm` files: each one that its
    /// group or others can read or write. Files that do not exist are skipped.
    static func database(_ path: String) -> [String] {
        [path, path + "-wal", path + "-shm"].compactMap { file in
            guard let mode = mode(of: file), mode & 0o066 != 0 else { return nil }
            return "\(file) is \(access(mode, mask: 0o066)) (mode \(octal(mode))); it holds commands, payloads and "
                + "their output: chmod 600 \(file)"
        }
    }

    /// Warnings about a schedules directory (or single file) and the schedule files in it: each one that
    /// its group or others can write (they could change what runs, and as whom). Being readable is not
    /// warned about: schedule files are configuration, like /etc/cron.d.
    /// - Throws: ``CLIError/usage(_:)`` when `directory` does not exist.
    static func schedules(_ directory: String) throws -> [String] {
        guard let own = mode(of: directory) else {
            throw CLIError.usage("--schedules \(directory): no such file or directory")
        }
        let files = (try? ScheduleLoading.scheduleFiles(in: directory)) ?? []
        var warnings: [String] = []
        if own & 0o022 != 0 {
            warnings.append("\(directory) is \(access(own, mask: 0o022)) (mode \(octal(own))); whoever can write there "
                + "chooses what rota runs: chmod go-w \(directory)")
        }
        for file in files where file != directory {
            if let mode = mode(of: file), mode & 0o022 != 0 {
                warnings.append("\(file) is \(access(mode, mask: 0o022)) (mode \(octal(mode))); whoever can write it "
                    + "chooses what rota runs: chmod go-w \(file)")
            }
        }
        return warnings
    }

    /// The permission bits of `path` (following symbolic links), or `nil` when it does not exist.
    static func mode(of path: String) -> UInt32? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt32(status.st_mode) & 0o7777
    }

    /// `readable by group and others`, `writable by others`, `readable and writable by group, readable by others`:
    /// who can do what, of the bits in `mask`.
    static func access(_ mode: UInt32, mask: UInt32) -> String {
        func rights(_ read: UInt32, _ write: UInt32) -> String? {
            let r = mode & mask & read != 0, w = mode & mask & write != 0
            switch (r, w) {
            case (true, true): return "readable and writable"
            case (true, false): return "readable"
            case (false, true): return "writable"
            case (false, false): return nil
            }
        }
        let group = rights(0o040, 0o020), others = rights(0o004, 0o002)
        switch (group, others) {
        case let (g?, o?) where g == o: return "\(g) by group and others"
        case let (g?, o?): return "\(g) by group, \(o) by others"
        case let (g?, nil): return "\(g) by group"
        case let (nil, o?): return "\(o) by others"
        case (nil, nil): return "private"
        }
    }

    /// `0644`.
    static func octal(_ mode: UInt32) -> String {
        let text = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - text.count)) + text
    }
}
