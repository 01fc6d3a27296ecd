// Whether this process may run Intel AMX tile instructions (AMX-TILE with AMX-INT8, the int8
// GEMMs' tiles). Three conditions, all needed, else a tile instruction is SIGILL: the CPU has them
// (CPUID leaf 7 EDX bits 24 / 25), the OS saves the tile state (XCR0 bits 17 and 18, via xgetbv), and on
// Linux the process was granted the tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM,
// XFEATURE_XTILEDATA), once per process: the permission covers every thread, later ones included).
// The check runs once, at the first call; it is thread safe (a function-local static).
#pragma once

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace kf::cpu {

struct AmxSupport {
  bool int8 = false;
};

inline AmxSupport detect_amx() {
  AmxSupport s;
#if defined(__GNUC__) && defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return s;
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = (d >> 24) & 1u, i8 = (d >> 25) & 1u;
  if (!tile) return s;
  __cpuid(1, a, b, c, d);
  if (!((c >> 27) & 1u)) return s;  // OSXSAVE: xgetbv is usable
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3u) != 3u) return s;  // XTILECFG and XTILEDATA enabled by the OS
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return s;
#else
  return s;  // other systems: no known way to ask for the permission here, so no AMX
#endif
  s.int8 = i8;
#endif
  return s;
}

inline const AmxSupport& amx_support() {
  static const AmxSupport s = detect_amx();
  return s;
}

}  // namespace kf::cpu
