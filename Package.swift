// swift-tools-version:5.10
// luagan: GAN research in Lua 5.4 over a Swift tensor engine on OpenBLAS.
import PackageDescription

import Foundation

// Release builds drop Swift's runtime checks in the numeric targets: every index and size is
// validated at the Lua boundary, and the kernels are hot loops. LUAGAN_CHECKED=1 builds with
// -O instead for the targets it names (LUAGAN_CHECKED=Layers, or all), to measure what the
// unchecked build is worth per target.
let checkedTargets = Set((ProcessInfo.processInfo.environment["LUAGAN_CHECKED"] ?? "").split(separator: ",").map(String.init))
func fast(_ target: String) -> [SwiftSetting] {
  checkedTargets.contains(target) || checkedTargets.contains("all") ? []
    : [.unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release))]
}

let package = Package(
  name: "luagan",
  products: [.executable(name: "luagan", targets: ["luagan"]), .executable(name: "luagan-fuzz", targets: ["LuaganFuzz"])],
  targets: [
    // MARK: - System libraries (Debian packages, found through pkg-config)
    .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
    .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
    .systemLibrary(name: "COpenMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

    // MARK: - Libraries
    // CPUID and XCR0: what the CPU can do, for choosing kernels by capability.
    .target(name: "CPUFeatures"),
    // luagan's own vector kernels, compiled per instruction set and chosen by CPUID.
    .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"], .when(configuration: .release))]),
    // The machine and its files: CPU features and the BLAS core, kernel level, memory limits,
    // files written atomically, JSON, the error type and checked size arithmetic.
    .target(name: "Host", dependencies: ["COpenBLAS", "CPUFeatures", "CKernels"]),
    // Tensors, kernels and autograd. Knows nothing of Lua.
    .target(name: "Tensor", dependencies: ["Host", "COpenBLAS", "CPUFeatures", "CKernels"], swiftSettings: fast("Tensor")),
    // Modules, layers, initializers and optimizers. Knows nothing of Lua.
    .target(name: "Layers", dependencies: ["Tensor"], swiftSettings: fast("Layers")),
    // PNG and JPEG in and out, sample sheets, resizing, line plots and their font. Knows nothing of Lua.
    .target(name: "Media", dependencies: ["Tensor", "CPNG", "CTurboJPEG"], swiftSettings: fast("Media")),
    // Data sets from files and the mini-batch loader. Knows nothing of Lua.
    .target(name: "Datasets", dependencies: ["Tensor", "Media", "CZlib"], swiftSettings: fast("Datasets")),
    // FID, IS, KID, precision/recall, SWD and MS-SSIM as their references compute them.
    .target(name: "Metrics", dependencies: ["Tensor", "COpenBLAS"], swiftSettings: fast("Metrics")),
    // The processes of a data-parallel run, over Open MPI (only when mpirun started them). Knows nothing of Lua.
    .target(name: "Distributed", dependencies: ["COpenMPI", "Tensor"]),
    // The only bridge to Lua: bindings, the module system, the Lua-side libraries.
    .target(
      name: "Runtime", dependencies: ["CLua", "Tensor", "Layers", "Media", "Datasets", "Metrics", "Distributed"],
      resources: [
        .embedInCode("lua/prelude.lua"),
        .embedInCode("lua/nn.lua"),
        .embedInCode("lua/optim.lua"),
        .embedInCode("lua/gan.lua"),
        .embedInCode("lua/data.lua"),
        .embedInCode("lua/ckpt.lua"),
        .embedInCode("lua/log.lua"),
        .embedInCode("lua/metrics.lua"),
        .embedInCode("lua/dist.lua"),
      ]),
    .executableTarget(name: "luagan", dependencies: ["Runtime"]),
    // The fuzzing driver: runs scripts/dev/fuzz in child processes and watches them from outside.
    .executableTarget(name: "LuaganFuzz"),

    // MARK: - Tests
    .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
    .testTarget(name: "LayersTests", dependencies: ["Layers", "Tensor"]),
    .testTarget(name: "MetricsTests", dependencies: ["Metrics"]),
    .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Tensor", "Media"]),
  ]
)
