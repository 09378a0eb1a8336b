import CKernels
import COpenBLAS
import CPUFeatures
import Foundation

/// How this binary was built.
public enum Build {
  /// Built with AddressSanitizer (make test-asan): resident sizes then include its quarantine.
  public static let addressSanitizer = lg_address_sanitizer() != 0
}

/// The machine luagan runs on: what the CPU can do (CPUID and XCR0, never the model number,
/// which new CPUs and virtual machines do not reliably report) and which OpenBLAS kernels run.
public struct CPU: Sendable {
  public let vendor: String
  public let brand: String
  public let family: Int, model: Int, stepping: Int
  /// Instruction sets the CPU has and the OS enables, by name ("avx2", "avx512f", ...).
  public let features: [String]

  /// The x86-64 micro-architecture level (psABI): 1 (SSE2), 2 (SSE4.2, POPCNT), 3 (AVX2, FMA,
  /// BMI2), 4 (AVX-512 F/BW/CD/DQ/VL).
  public let isaLevel: Int

  public static let current = CPU(lg: {
    var f = lg_cpu_features()
    lg_cpu_features_read(&f)
    return f
  }())

  init(lg f: lg_cpu_features) {
    func text<T>(_ tuple: T) -> String {
      withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    vendor = text(f.vendor)
    brand = text(f.brand).trimmingCharacters(in: .whitespaces)
    family = Int(f.family); model = Int(f.model); stepping = Int(f.stepping)
    let named: [(String, Int32)] = [
      ("sse3", f.sse3), ("ssse3", f.ssse3), ("sse4.1", f.sse41), ("sse4.2", f.sse42), ("popcnt", f.popcnt),
      ("avx", f.avx), ("avx2", f.avx2), ("fma", f.fma), ("f16c", f.f16c), ("bmi1", f.bmi1), ("bmi2", f.bmi2),
      ("movbe", f.movbe), ("avx512f", f.avx512f), ("avx512cd", f.avx512cd), ("avx512bw", f.avx512bw),
      ("avx512dq", f.avx512dq), ("avx512vl", f.avx512vl), ("avx512vnni", f.avx512vnni), ("avx512bf16", f.avx512bf16),
      ("avx512fp16", f.avx512fp16), ("amx-tile", f.amx_tile), ("amx-bf16", f.amx_bf16), ("amx-int8", f.amx_int8),
    ]
    features = named.filter { $0.1 != 0 }.map { $0.0 }
    isaLevel = CPU.level(Set(features))
  }

  /// Builds a CPU from a feature list (for tests of the core table).
  public init(vendor: String, features: [String]) {
    self.vendor = vendor
    brand = ""
    family = 0; model = 0; stepping = 0
    self.features = features
    isaLevel = CPU.level(Set(features))
  }

  static func level(_ f: Set<String>) -> Int {
    if f.isSuperset(of: ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"]) { return 4 }
    if f.isSuperset(of: ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"]) { return 3 }
    if f.isSuperset(of: ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt"]) { return 2 }
    return 1
  }

  public func has(_ feature: String) -> Bool { features.contains(feature) }

  /// "x86-64-v3 (AVX2, FMA)" and the like.
  public var isaDescription: String {
    switch isaLevel {
    case 4: return "x86-64-v4 (AVX-512\(has("avx512bf16") ? " with BF16" : "")\(has("amx-tile") ? ", AMX" : ""))"
    case 3: return "x86-64-v3 (AVX2, FMA)"
    case 2: return "x86-64-v2 (SSE4.2)"
    default: return "x86-64-v1 (SSE2\(has("sse3") ? ", SSE3" : ""))"
    }
  }
}

/// OpenBLAS's kernels: which core runs, which one this CPU deserves, and who chose.
public enum BLASCore {
  /// The ISA rank of each OpenBLAS core name (lowercased): what its kernels need. A core is
  /// weaker than the CPU when its rank is below the best core's for that CPU.
  static let ranks: [String: Int] = [
    "katmai": 0, "coppermine": 0, "northwood": 0, "prescott": 1, "banias": 0, "atom": 1, "core2": 1, "penryn": 1,
    "dunnington": 1, "athlon": 0, "opteron": 1, "opteron_sse3": 1, "barcelona": 1, "nano": 1, "bobcat": 1,
    "nehalem": 2, "sandybridge": 3, "bulldozer": 3, "piledriver": 3, "steamroller": 3,
    "haswell": 4, "excavator": 4, "zen": 4, "skylakex": 5, "cooperlake": 6, "sapphirerapids": 7,
  ]

  public static func rank(_ core: String) -> Int { ranks[core.lowercased()] ?? 0 }

  /// The OpenBLAS core for what `cpu` can do: AVX-512 with BF16 → Cooperlake, AVX-512 →
  /// SkylakeX, AVX2 + FMA → Zen on AMD and Haswell elsewhere, AVX → Sandybridge, SSE4.2 →
  /// Nehalem, else Prescott.
  public static func best(for cpu: CPU) -> String {
    if cpu.isaLevel >= 4 { return cpu.has("avx512bf16") ? "Cooperlake" : "SkylakeX" }
    if cpu.has("avx2") && cpu.has("fma") { return cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine" ? "Zen" : "Haswell" }
    if cpu.has("avx") { return "Sandybridge" }
    if cpu.has("sse4.2") { return "Nehalem" }
    return "Prescott"
  }

  /// The core OpenBLAS runs now.
  public static var current: String { String(cString: openblas_get_corename()) }

  /// How the core was chosen, set by the luagan executable at start-up: "OpenBLAS",
  /// "luagan (OpenBLAS chose Prescott)", "OPENBLAS_CORETYPE (yours)".
  nonisolated(unsafe) public static var chosenBy = "OpenBLAS"

  /// sgemm GFLOP/s a core of this ISA should reach per thread at 2.5 GHz or more, with some
  /// slack: below it, `make bench` warns that the BLAS is not what the CPU can do.
  public static func expectedGflopsPerThread(_ core: String) -> Double {
    switch rank(core) {
    case 5...: return 60   // AVX-512: 64 FLOP/cycle peak
    case 4: return 40      // AVX2 + FMA: 32 FLOP/cycle
    case 3: return 20      // AVX: 16
    default: return 6      // SSE: 8
    }
  }
}

/// luagan's own vector kernels (Sources/CKernels) come in baseline, AVX2 + FMA and AVX-512
/// builds; the best one this CPU supports runs, chosen from CPUID as the BLAS core is.
/// LUAGAN_SIMD=base, avx2 or avx512 forces one (never more than the CPU supports).
public enum SIMDKernels {
  /// The ISA level in use: 1 baseline, 3 AVX2 + FMA, 4 AVX-512.
  public static var level: Int { _ = selected; return Int(lg_kernels_level()) }

  public static let selected: Int = {
    let cpu = CPU.current.isaLevel
    let forced: Int? = ["base": 1, "avx2": 3, "avx512": 4][ProcessInfo.processInfo.environment["LUAGAN_SIMD"] ?? ""]
    return Int(lg_kernels_select(Int32(Swift.min(forced ?? cpu, cpu))))
  }()

  /// Runs `body` with the kernels of `level` (capped at the CPU's), then restores the choice.
  public static func with<R>(level: Int, _ body: () throws -> R) rethrows -> R {
    _ = selected
    let saved = lg_kernels_level()
    lg_kernels_select(Int32(Swift.min(level, CPU.current.isaLevel)))
    defer { lg_kernels_select(saved) }
    return try body()
  }

  public static var name: String { ["1": "baseline", "3": "AVX2 + FMA", "4": "AVX-512"]["\(level)"] ?? "level \(level)" }
}
