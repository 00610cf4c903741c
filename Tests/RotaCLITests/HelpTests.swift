import Foundation
import Testing

@Suite("rota --help and completion")
struct HelpTests {
    @Test(arguments: ["enqueue", "list", "show", "stats", "retry", "cancel", "purge", "workers", "check"])
    func everyCommandHasHelpWithExamples(command: String) throws {
        let result = try Rota.run([command, "--help"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("USAGE: rota \(command)"))
        #expect(result.stdout.contains("Examples:"))
        #expect(result.stdout.contains("--db <path>"))
    }

    @Test func theRootHelpListsTheCommandsButNotTheHiddenOnes() throws {
        let result = try Rota.run(["--help"])
        #expect(result.status == 0)
        for command in ["enqueue", "list", "show", "stats", "retry", "cancel", "purge", "workers", "migrate", "check"] {
            #expect(result.stdout.contains("  \(command) "), "\(command) missing")
        }
        #expect(!result.stdout.contains("_dev"))
    }

    @Test func bashCompletionIsGenerated() throws {
        let result = try Rota.run(["--generate-completion-script", "bash"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("enqueue"))
        #expect(result.stdout.contains("--older-than"))
    }

    @Test func anUnknownCommandOrOptionIsBadUsage() throws {
        #expect(try Rota.run(["frobnicate"]).status == 2)
        #expect(try Rota.run(["list", "--frobnicate"]).status == 2)
    }
}
