/// Cron expressions and schedule files. (Filled in by the cron work.)
public enum RotaCronVersion {
    /// The module's format version.
    public static let formatVersion = 1
}
