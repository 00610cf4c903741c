/// Rota's version.
public enum RotaVersion {
    /// The version string printed by `rota --version`.
    public static let string = "0.1.0"
}
