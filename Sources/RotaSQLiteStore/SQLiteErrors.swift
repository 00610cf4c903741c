import Foundation
import Rota
import RotaSQLite

extension RotaError {
    /// Wraps an error thrown by the SQLite layer into a ``RotaError`` with an actionable message.
    static func wrapping(_ error: any Error, path: String) -> any Error {
        if let error = error as? MigrationError { return RotaError(.database, error.message) }
        guard let error = error as? SQLiteError else { return error }
        if error.isBusy {
            return RotaError(.busy, "the database \(path) is locked by another process past the busy timeout; nothing was written, retry later (\(error.message))", underlying: error)
        }
        if error.isFull {
            return RotaError(.full, "the disk or database \(path) is full; nothing was written, retry once space is freed (\(error.message))", underlying: error)
        }
        if error.code == 8 /* SQLITE_READONLY */ {
            return RotaError(.database, "the database \(path) is read-only: \(error.message)", underlying: error)
        }
        return RotaError(.database, error.description, underlying: error)
    }
}
