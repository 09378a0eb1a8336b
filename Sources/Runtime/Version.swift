/// luagan's version, shown by `luagan --version` and in checkpoints.
public enum Version {
  public static let luagan = "0.1.0"
}
