// What this x86-64 CPU can do, read from CPUID, and what the OS lets it do, read from XCR0
// (AVX and AVX-512 need the OS to save their registers). luagan picks BLAS kernels from this,
// never from the model number, which new CPUs and virtual machines do not reliably report.
#ifndef LUAGAN_CPU_FEATURES_H
#define LUAGAN_CPU_FEATURES_H

typedef struct {
  char vendor[13];   // "GenuineIntel", "AuthenticAMD", ...
  char brand[49];    // "AMD EPYC 7B13 64-Core Processor", possibly generic in a VM
  int family, model, stepping;
  // Instruction sets the CPU reports and the OS enables.
  int sse3, ssse3, sse41, sse42, popcnt;
  int avx, avx2, fma, f16c, bmi1, bmi2, movbe;
  int avx512f, avx512cd, avx512bw, avx512dq, avx512vl, avx512vnni, avx512bf16, avx512fp16;
  int amx_tile, amx_bf16, amx_int8;
  // XCR0 state: the OS saves YMM (AVX), ZMM and opmask (AVX-512), AMX tiles.
  int os_avx, os_avx512, os_amx;
} lg_cpu_features;

/// Fills `out` from CPUID and XGETBV. Never fails: unknown leaves read as zero.
void lg_cpu_features_read(lg_cpu_features *out);

/// 1 when this build runs under AddressSanitizer (make test-asan), whose quarantine of freed
/// blocks and redzones make resident-memory figures meaningless.
int lg_address_sanitizer(void);

#endif
