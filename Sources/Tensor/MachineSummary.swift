import Host

/// What runs: the CPU, its ISA level, the BLAS core and who chose it, and the thread count.
public enum Machine {
  public static var summary: String {
    let cpu = CPU.current
    return """
      CPU: \(cpu.brand.isEmpty ? "unknown" : cpu.brand) (\(cpu.vendor), family \(cpu.family) model \(cpu.model)), \(cpu.isaDescription)
      BLAS: OpenBLAS \(BLASCore.current) kernels (best for this CPU: \(BLASCore.best(for: cpu)); chosen by \(BLASCore.chosenBy))
      OpenBLAS build: \(Parallel.blasDescription)
      luagan kernels: \(SIMDKernels.name)
      float32 GEMM: \(Machine.sgemmOwner)
      threads: \(Parallel.threads)
      """
  }

  /// Whose kernel runs float32 matrix products (see ownSgemm).
  public static var sgemmOwner: String {
    sgemmRunsOwnKernel ? "luagan's packed AVX-512 kernel" : "OpenBLAS \(BLASCore.current)"
  }
}
