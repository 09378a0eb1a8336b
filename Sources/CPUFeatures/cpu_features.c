#include "cpu_features.h"
#include <cpuid.h>
#include <string.h>

static unsigned long long xgetbv0(void) {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}

void lg_cpu_features_read(lg_cpu_features *out) {
  memset(out, 0, sizeof *out);
  unsigned int a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return;
  unsigned int maxLeaf = a;
  memcpy(out->vendor, &b, 4); memcpy(out->vendor + 4, &d, 4); memcpy(out->vendor + 8, &c, 4);
  out->vendor[12] = 0;

  __get_cpuid(1, &a, &b, &c, &d);
  int baseFamily = (a >> 8) & 0xf, baseModel = (a >> 4) & 0xf;
  out->family = baseFamily == 0xf ? baseFamily + ((a >> 20) & 0xff) : baseFamily;
  out->model = (baseFamily == 0x6 || baseFamily == 0xf) ? (int)(((a >> 16) & 0xf) << 4) + baseModel : baseModel;
  out->stepping = a & 0xf;
  out->sse3 = (c >> 0) & 1; out->ssse3 = (c >> 9) & 1; out->fma = (c >> 12) & 1;
  out->sse41 = (c >> 19) & 1; out->sse42 = (c >> 20) & 1; out->movbe = (c >> 22) & 1;
  out->popcnt = (c >> 23) & 1; out->f16c = (c >> 29) & 1;
  int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;

  unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  out->os_avx = (xcr0 & 0x6) == 0x6;                  // SSE and YMM state
  out->os_avx512 = out->os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  out->os_amx = (xcr0 & 0x60000) == 0x60000;          // XTILECFG, XTILEDATA
  out->avx = avx && out->os_avx;
  if (!out->os_avx) out->fma = out->f16c = 0;

  if (maxLeaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    out->bmi1 = (b >> 3) & 1; out->bmi2 = (b >> 8) & 1;
    out->avx2 = out->os_avx && ((b >> 5) & 1);
    if (out->os_avx512) {
      out->avx512f = (b >> 16) & 1; out->avx512dq = (b >> 17) & 1; out->avx512cd = (b >> 28) & 1;
      out->avx512bw = (b >> 30) & 1; out->avx512vl = (b >> 31) & 1; out->avx512vnni = (c >> 11) & 1;
      out->avx512fp16 = (d >> 23) & 1;
    }
    if (out->os_amx) { out->amx_bf16 = (d >> 22) & 1; out->amx_tile = (d >> 24) & 1; out->amx_int8 = (d >> 25) & 1; }
    unsigned int sub = a;
    if (sub >= 1 && out->os_avx512) {
      __cpuid_count(7, 1, a, b, c, d);
      out->avx512bf16 = (a >> 5) & 1;
    }
  }
  __get_cpuid(0x80000000, &a, &b, &c, &d);
  if (a >= 0x80000004) {
    unsigned int regs[12];
    for (unsigned int i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    memcpy(out->brand, regs, 48);
    out->brand[48] = 0;
    // Trim leading spaces (Intel pads the brand string).
    char *p = out->brand;
    while (*p == ' ') p++;
    if (p != out->brand) memmove(out->brand, p, strlen(p) + 1);
  }
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LG_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LG_ADDRESS_SANITIZER 1
#endif

int lg_address_sanitizer(void) {
#ifdef LG_ADDRESS_SANITIZER
  return 1;
#else
  return 0;
#endif
}
