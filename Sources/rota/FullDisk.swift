import Foundation
import Rota
import RotaPostgresStore
import RotaSQLite

/// The words for a write refused because the disk, a file size limit or the database's page limit is
/// full: which file, why, what was written and what was not, and how to carry on. SQLite alone says
/// `SQLITE_IOERR (778): disk I/O error — in: COMMIT`; a person needs to know that nothing is damaged and
/// that running the same command again once there is room finishes the job.
enum FullDisk {
    /// The error as a full-disk failure, or nil when it is something else: a `.full` error, or an I/O
    /// error without a known reason while a file of `database` stands at the file size limit. Never for a
    /// PostgreSQL database (a URL): the server's full disk is its own, and its message says so.
    static func failure(_ error: any Error, database: String) -> RotaError? {
        guard let error = error as? RotaError, !PostgresTaskStore.Configuration.isURL(database) else { return nil }
        if error.code == .full { return error }
        if let underlying = error.underlying as? SQLiteError, underlying.code == 10 /* SQLITE_IOERR */, underlying.systemErrno == 0,
           fileAtSizeLimit(database: database) != nil {
            return error
        }
        return nil
    }

    /// The file of `database` (itself, its WAL, its journal or its shared memory) that reached this
    /// process's file size limit (`ulimit -f`), and the limit; nil when there is no limit or none did.
    static func fileAtSizeLimit(database: String) -> (path: String, limit: UInt64)? {
        var limit = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        #else
        let resource = RLIMIT_FSIZE
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur != rlim_t.max /* RLIM_INFINITY */ else { return nil }
        for path in [database + "-wal", database, database + "-journal", database + "-shm"] {
            if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
               size.uint64Value >= UInt64(limit.rlim_cur) {
                return (path, UInt64(limit.rlim_cur))
            }
        }
        return nil
    }

    /// Why the write failed, in words, from the system error underneath (when SQLite kept one).
    static func cause(_ error: RotaError) -> String {
        switch (error.underlying as? SQLiteError)?.systemErrno ?? 0 {
        case EFBIG:
            return "a file reached the largest size this process may write "
                + "(the file size limit, `ulimit -f`, or the file system's largest file)"
        case ENOSPC:
            return "the disk is full (no space left on the device)"
        case EDQUOT:
            return "the disk quota is used up"
        default:
            return "the disk is full, or a file reached its size limit"
        }
    }

    /// The full message: `cannot write to FILE: CAUSE [SQLite's detail]`, then what was `written`, then
    /// what to do: make room, then run the same command again (`afterRerun` adds what that does).
    ///
    /// - Parameters:
    ///   - error: the `.full` error.
    ///   - database: the database path (`--db`).
    ///   - written: what the command committed before the failure, and what it did not write.
    ///   - afterRerun: appended to "…, then run the same command again", e.g. ": it adds only the missing items".
    static func message(_ error: RotaError, database: String, written: String, afterRerun: String = "") -> String {
        let atLimit = fileAtSizeLimit(database: database)
        let what: String
        let advice: String
        if let (path, limit) = atLimit {
            what = "cannot write to \(path): it reached the largest size this process may write, \(limit) bytes "
                + "(the file size limit, `ulimit -f`)"
            advice = "raise the file size limit (`ulimit -f`)"
        } else {
            what = "cannot write to \(database) or its write-ahead log \(database)-wal: \(cause(error))"
            switch (error.underlying as? SQLiteError)?.systemErrno ?? 0 {
            case ENOSPC: advice = "free some space on the disk"
            case EDQUOT: advice = "free some space or raise the quota"
            default: advice = "free some space (or raise the limit)"
            }
        }
        return what + detail(error) + "\n\(written)\n\(advice), then run the same command again\(afterRerun)"
    }

    /// SQLite's own words, on one line and not too long: ` [SQLITE_IOERR (778): disk I/O error (errno 27:
    /// File too large) — in: COMMIT]`.
    private static func detail(_ error: RotaError) -> String {
        guard let underlying = error.underlying as? SQLiteError else { return "" }
        var text = underlying.description.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        if text.count > 160 { text = String(text.prefix(159)) + "…" }
        return " [\(text)]"
    }

    /// The message for any other command: the transaction that failed was rolled back (retry, cancel and
    /// purge write in one; `migrate` in one per migration, so earlier migrations stay applied).
    static func message(_ error: RotaError, database: String) -> String {
        message(error, database: database,
                written: "the transaction that failed was rolled back: none of its changes were written, and the database is intact",
                afterRerun: ": it carries on from where this one stopped")
    }
}
