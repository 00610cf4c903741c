import Foundation
import RotaSQLite

extension SQLiteTaskStore {
    public func countUnfinished(queues: [String], names: [String]?) async throws -> Int {
        let queueList = try Self.jsonArray(queues)
        return try read { db in
            if let names {
                let nameList = try Self.jsonArray(names)
                return Int(try db.scalarInt("""
                    SELECT count(*) FROM tasks WHERE state IN ('scheduled', 'running')
                    AND queue IN (SELECT value FROM json_each(?1)) AND name IN (SELECT value FROM json_each(?2))
                    """, [.text(queueList), .text(nameList)]) ?? 0)
            }
            return Int(try db.scalarInt("""
                SELECT count(*) FROM tasks WHERE state IN ('scheduled', 'running')
                AND queue IN (SELECT value FROM json_each(?1))
                """, [.text(queueList)]) ?? 0)
        }
    }
}
