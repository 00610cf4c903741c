import CSQLite
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Calls back when one file changes, without polling: a thread blocked on Linux inotify.
///
/// Made for noticing commits of other processes to a SQLite database in WAL mode: every commit writes
/// to the `-wal` file (see ``Connection/walPath``), so watching it wakes a waiting scheduler within a
/// moment of the commit, at no cost while nothing is written. The callback comes when the commit's
/// frames are *written*, which is before the commit is *visible* (with `synchronous = FULL`, a sync
/// later): wait out the writer with ``Connection/waitForOtherWriters(timeout:)`` before reading
/// `PRAGMA data_version`, or the commit is missed until the next change.
///
/// ```swift
/// let watcher = try FileChangeWatcher(path: connection.walPath!) {
///     engine.wake()   // quick and non-blocking
/// }
/// var seen = try connection.dataVersion()   // after the watcher started: no gap
/// // On the engine's thread, after a wake:
/// if try connection.waitForOtherWriters(timeout: .seconds(5)) == false || connection.dataVersion() != seen {
///     seen = try connection.dataVersion()
///     // another connection committed (or may have): look at the tables
/// }
/// // ...
/// watcher.stop()     // returns once the thread has ended; no callback starts after it
/// ```
///
/// What counts as a change of the file at ``path``: a write or truncation (`IN_MODIFY`), its creation,
/// its deletion, and a rename to or from its name (a replacement). Opening, reading, closing and
/// metadata changes (`chmod`, `touch` of times) do not count. The file need not exist: the watcher
/// watches its *directory* (not the file's inode) and filters the events by the file's name, so it
/// keeps working across deletion and re-creation, which SQLite does to the `-wal` file when the last
/// connection closes and the next one opens.
///
/// ## The guarantee
///
/// Every change that happens after the initializer returns is followed by at least one start of the
/// callback: for every change, some callback *starts* after the change (until ``stop()``). Callbacks
/// are coalesced: a burst of changes may produce a single callback, and a change that happens while
/// the callback runs produces another callback after it returns. Nothing is said about a change before
/// the initializer returned, so a caller that wants no gap reads its state (for SQLite, `PRAGMA
/// data_version`) *after* creating the watcher. A callback may also come without a change the caller
/// cares about (for example a commit of the caller's own connection to the same file, or a queue
/// overflow in the kernel, which is reported as a change): callbacks are hints to look, not events.
///
/// ## The callback
///
/// It runs on the watcher's own thread, one call at a time, never after ``stop()`` has returned.
/// Keep it short and non-blocking (set a flag, signal a condition): while it runs, changes queue up
/// and are coalesced into the next call. It may call ``stop()`` (which then returns at once).
///
/// ## Costs and limits
///
/// One thread (blocked in `poll(2)`, no CPU while nothing happens), one inotify instance and one
/// watch on the directory, and a pipe to wake the thread for ``stop()``. Writes to *other* files in
/// the same directory (such as the main database file at a checkpoint) wake the thread briefly but do
/// not call back. inotify sees changes made through the local kernel only: not those made by another
/// machine on a network file system (SQLite's WAL mode does not work there anyway).
///
/// If the directory itself is removed or renamed, the watcher calls back (the file is gone or moved)
/// and tries to watch the directory's path again every `retryInterval`, calling back once more when it
/// succeeds. Should inotify fail while running (never seen in practice), the watcher degrades to
/// calling back every `retryInterval` rather than missing changes.
///
/// On platforms without inotify (anything but Linux), and when inotify cannot be set up (limits such
/// as `fs.inotify.max_user_instances`, a missing directory), the initializer throws a
/// ``FileChangeWatcher/Failure``: the caller falls back to polling.
public final class FileChangeWatcher: Sendable {
    /// Why a watcher could not start.
    public struct Failure: Error, CustomStringConvertible, Sendable, Equatable {
        /// The kind of failure.
        public enum Reason: Sendable, Equatable {
            /// Not built for Linux: there is no inotify.
            case unsupportedPlatform
            /// Watching is turned off by the environment (`ROTA_FILE_WATCH=off`), to exercise fallbacks.
            case disabled
            /// The path names no file (empty, or ends with `/`, `.` or `..`).
            case invalidPath
            /// `inotify_init1` failed (the kernel lacks inotify, or `fs.inotify.max_user_instances` is
            /// reached, or the process is out of file descriptors).
            case inotifyUnavailable
            /// The file's directory cannot be watched (missing, not a directory, not searchable, or
            /// `fs.inotify.max_user_watches` reached).
            case cannotWatchDirectory
            /// The pipe or the thread could not be created.
            case cannotStart
        }

        /// The kind of failure.
        public let reason: Reason
        /// The path that was to be watched.
        public let path: String
        /// The `errno` of the failing call, or 0.
        public let errorNumber: Int32

        /// Creates a failure.
        public init(reason: Reason, path: String, errorNumber: Int32 = 0) {
            self.reason = reason
            self.path = path
            self.errorNumber = errorNumber
        }

        /// A sentence saying what failed and what to do.
        public var description: String {
            let cause = errorNumber == 0 ? "" : ": " + String(cString: strerror(errorNumber))
            switch reason {
            case .unsupportedPlatform:
                return "cannot watch \(path) for changes: inotify exists on Linux only; poll instead"
            case .disabled:
                return "not watching \(path) for changes: ROTA_FILE_WATCH=off; poll instead"
            case .invalidPath:
                return "cannot watch \(path) for changes: the path names no file"
            case .inotifyUnavailable:
                let hint = errorNumber == EMFILE
                    ? " (the limit of inotify instances, sysctl fs.inotify.max_user_instances, or of open files is reached)"
                    : ""
                return "cannot watch \(path) for changes: inotify is unavailable\(cause)\(hint); poll instead"
            case .cannotWatchDirectory:
                let hint = errorNumber == ENOSPC ? " (the limit of inotify watches, sysctl fs.inotify.max_user_watches, is reached)" : ""
                return "cannot watch \(path) for changes: cannot watch its directory\(cause)\(hint); poll instead"
            case .cannotStart:
                return "cannot watch \(path) for changes: cannot start the watcher\(cause); poll instead"
            }
        }
    }

    /// The watched file's path, as given.
    public let path: String
    /// The absolute path of the directory that is watched.
    public let directory: String
    /// The file's name in ``directory``: events for other names are ignored.
    public let fileName: String

    #if os(Linux)
    private let core: Core
    private let thread: pthread_t
    /// Serializes ``stop()`` calls from threads other than the watcher's.
    private let stopping = Mutex<Void>(())
    #endif

    /// Starts watching `path`; changes from the moment this returns are reported (see the type's
    /// guarantee). The file need not exist; its directory must.
    ///
    /// - Parameters:
    ///   - path: the file to watch (for SQLite's WAL: ``Connection/walPath``). A relative path is taken
    ///     from the current directory now. Symbolic links in the directory part are followed; the file
    ///     name itself is watched as a name (pass the link's target to watch the target).
    ///   - retryInterval: how often to try again when the directory's watch was lost (directory removed
    ///     or renamed), and the period of callbacks if inotify fails while running. At least 1 ms.
    ///   - onChange: called on the watcher's thread after changes; short and non-blocking.
    /// - Throws: ``Failure`` when inotify is unavailable or the directory cannot be watched: poll instead.
    public init(path: String, retryInterval: Duration = .seconds(1), onChange: @escaping @Sendable () -> Void) throws {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        if !directory.hasPrefix("/") {
            directory = FileManager.default.currentDirectoryPath + (directory == "." ? "" : "/" + directory)
        }
        self.directory = directory
        self.fileName = name
        if name.isEmpty || name == "." || name == ".." {
            throw Failure(reason: .invalidPath, path: path)
        }
        #if os(Linux)
        if Self.isDisabled(by: ProcessInfo.processInfo.environment) {
            throw Failure(reason: .disabled, path: path)
        }
        let inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard inotify >= 0 else { throw Failure(reason: .inotifyUnavailable, path: path, errorNumber: errno) }
        let watch = inotify_add_watch(inotify, directory, Core.directoryMask)
        guard watch >= 0 else {
            let error = errno
            close(inotify)
            throw Failure(reason: .cannotWatchDirectory, path: path, errorNumber: error)
        }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            let error = errno
            close(inotify)
            throw Failure(reason: .cannotStart, path: path, errorNumber: error)
        }
        for end in pipeEnds {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        let milliseconds = retryInterval.components.seconds * 1000 + retryInterval.components.attoseconds / 1_000_000_000_000_000
        let core = Core(inotify: inotify, watch: watch, wakeRead: pipeEnds[0], wakeWrite: pipeEnds[1],
                        directory: directory, name: Array(name.utf8),
                        retryMilliseconds: Int32(clamping: max(1, milliseconds)), onChange: onChange)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(core).toOpaque()
        let created = pthread_create(&thread, nil, { context in
            let core = Unmanaged<Core>.fromOpaque(context!).takeRetainedValue()
            core.run()
            return nil
        }, context)
        guard created == 0 else {
            Unmanaged<Core>.fromOpaque(context).release()
            core.closeDescriptors()
            throw Failure(reason: .cannotStart, path: path, errorNumber: created)
        }
        core.started.wait()  // named and running: the thread shows up as `rota-watch` from now on
        self.core = core
        self.thread = thread
        #else
        throw Failure(reason: .unsupportedPlatform, path: path)
        #endif
    }

    deinit {
        stop()
    }

    /// True when `environment` turns watching off (`ROTA_FILE_WATCH=off`): the initializer then throws
    /// ``Failure/Reason/disabled``, so that a process can be made to take its fallback.
    static func isDisabled(by environment: [String: String]) -> Bool {
        environment["ROTA_FILE_WATCH"] == "off"
    }

    /// Stops watching. Returns once the watcher's thread has ended and its descriptors are closed; no
    /// callback starts after it returns. Safe to call more than once and from several threads (a
    /// second caller waits for the first).
    ///
    /// Called from the callback itself, it returns at once: the running callback is the last one, and
    /// the thread ends (and closes its descriptors) when the callback returns. Do not call it while
    /// holding a lock that the callback takes: it waits for the callback in progress to return.
    public func stop() {
        #if os(Linux)
        if pthread_equal(pthread_self(), thread) != 0 {
            core.stopRequested.store(true, ordering: .sequentiallyConsistent)
            let detach = core.lifecycle.withLock { state in
                guard case .running = state else { return false }
                state = .detached
                return true
            }
            if detach { pthread_detach(thread) }
            return
        }
        stopping.withLock { _ in
            let join = core.lifecycle.withLock { state in
                guard case .running = state else { return false }
                state = .joining
                return true
            }
            guard join else { return }
            core.stopRequested.store(true, ordering: .sequentiallyConsistent)
            var byte: UInt8 = 1
            _ = write(core.wakeWrite, &byte, 1)
            pthread_join(thread, nil)
            core.closeDescriptors()
            core.lifecycle.withLock { $0 = .finished }
        }
        #endif
    }
}

#if os(Linux)
extension FileChangeWatcher {
    /// Who ends the thread's life and closes the descriptors.
    fileprivate enum Lifecycle {
        /// The thread runs; nobody has asked it to stop.
        case running
        /// A ``FileChangeWatcher/stop()`` from another thread joins the thread, then closes.
        case joining
        /// Stopped from the callback: the thread is detached and closes the descriptors as it ends.
        case detached
        /// The thread has ended and the descriptors are closed.
        case finished
    }

    /// The thread's state, shared by the thread and the watcher (which may go away first).
    fileprivate final class Core: Sendable {
        /// Changes of the directory's entries and of the files in it, and of the directory itself.
        static let directoryMask = UInt32(IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
            | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
        /// The changes of a directory entry that count as a change of the watched file.
        /// Microseconds the thread rests after a report (see ``run()``).
        static let coalescePause: useconds_t = 1_000
        static let fileMask = UInt32(IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)

        let inotify: Int32
        let initialWatch: Int32
        let wakeRead: Int32
        let wakeWrite: Int32
        let directory: String
        let name: [UInt8]
        let retryMilliseconds: Int32
        let onChange: @Sendable () -> Void
        let stopRequested = Atomic<Bool>(false)
        let lifecycle = Mutex<Lifecycle>(.running)
        let started = DispatchSemaphore(value: 0)

        init(inotify: Int32, watch: Int32, wakeRead: Int32, wakeWrite: Int32, directory: String, name: [UInt8],
             retryMilliseconds: Int32, onChange: @escaping @Sendable () -> Void) {
            self.inotify = inotify
            self.initialWatch = watch
            self.wakeRead = wakeRead
            self.wakeWrite = wakeWrite
            self.directory = directory
            self.name = name
            self.retryMilliseconds = retryMilliseconds
            self.onChange = onChange
        }

        func closeDescriptors() {
            close(inotify)
            close(wakeRead)
            close(wakeWrite)
        }

        private var stopped: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }

        /// The thread: waits for inotify events or the stop byte; calls back after relevant events.
        func run() {
            Thread.current.name = "rota-watch"
            started.signal()
            let capacity = 64 * 1024
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            defer { buffer.deallocate() }
            var watch = initialWatch  // -1 while the directory is not watched (retrying)
            var degraded = false      // inotify failed: call back every retry interval instead
            var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            while !stopped {
                fds[0].revents = 0
                fds[1].revents = 0
                fds[0].fd = degraded ? -1 : inotify  // a negative fd is skipped by poll(2)
                let ready = poll(&fds, 2, watch >= 0 && !degraded ? -1 : retryMilliseconds)
                if ready < 0 {
                    if errno == EINTR { continue }
                    degraded = true
                    continue
                }
                if fds[1].revents != 0 { break }  // the stop byte (or the pipe broke: stop too)
                var changed = false
                if ready == 0 {
                    if degraded {
                        changed = true
                    } else if watch < 0 {
                        // Changes while the directory was not watched went unseen: report one.
                        watch = inotify_add_watch(inotify, directory, Self.directoryMask)
                        changed = watch >= 0
                    }
                }
                if fds[0].revents & Int16(POLLIN) != 0 {
                    switch drain(buffer, capacity, &watch) {
                    case .some(let relevant): changed = changed || relevant
                    case .none: degraded = true; changed = true
                    }
                } else if fds[0].revents != 0 {
                    degraded = true  // POLLERR/POLLNVAL: never expected from an inotify descriptor
                    changed = true
                }
                if changed, !stopped {
                    onChange()
                    // A commit is many writes, each an event when read at once: a moment's pause lets the
                    // kernel merge the rest of them into one (identical unread events coalesce), so a busy
                    // writer costs about one wake-up per commit, not one per page. Changes that come during it
                    // are reported right after it.
                    usleep(Self.coalescePause)
                }
            }
            let close = lifecycle.withLock { state in
                guard case .detached = state else { return false }
                state = .finished
                return true
            }
            if close { closeDescriptors() }
        }

        /// Reads every queued event; true when one concerns the file (or may have: a queue overflow, the
        /// directory's watch lost), nil when reading fails.
        private func drain(_ buffer: UnsafeMutableRawPointer, _ capacity: Int, _ watch: inout Int32) -> Bool? {
            var relevant = false
            while true {
                let count = read(inotify, buffer, capacity)
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return relevant }
                    return nil
                }
                if count == 0 { return relevant }
                var offset = 0
                while offset + 16 <= count {
                    let eventWatch = buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameStart = offset + 16
                    offset = nameStart + length
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                        relevant = true  // events were lost
                        continue
                    }
                    guard eventWatch == watch, watch >= 0 else { continue }  // an old watch's last events
                    if mask & UInt32(IN_IGNORED) != 0 {
                        watch = -1  // the directory is gone (or unmounted): retry its path
                        relevant = true
                    } else if mask & UInt32(IN_MOVE_SELF) != 0 {
                        // The watch follows the renamed directory; the path now names something else.
                        inotify_rm_watch(inotify, watch)
                        watch = inotify_add_watch(inotify, directory, Self.directoryMask)
                        relevant = true
                    } else if mask & UInt32(IN_DELETE_SELF) != 0 {
                        relevant = true  // IN_IGNORED follows
                    } else if mask & Self.fileMask != 0, length > 0, nameMatches(buffer + nameStart, length) {
                        relevant = true
                    }
                }
            }
        }

        /// True when the NUL-padded name of `length` bytes at `start` is the watched file's name.
        private func nameMatches(_ start: UnsafeMutableRawPointer, _ length: Int) -> Bool {
            let bytes = UnsafeRawBufferPointer(start: start, count: length)
            let end = bytes.firstIndex(of: 0) ?? length
            return end == name.count && bytes[0..<end].elementsEqual(name)
        }
    }
}
#endif
