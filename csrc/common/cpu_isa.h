// Run-time choice of the CPU code path, shared by every family: the wheel targets baseline
// x86-64 and each kernel is compiled again per level with a target attribute (KF_TARGET_AVX2,
// KF_TARGET_AVX512), then picked by kf::cpu::isa() at the call. Unlike target_clones, a target
// attribute also reaches the OpenMP regions GCC outlines from the function, and the path can be
// forced (KERNELFLOW_CPU_ISA or kernelflow._C.set_cpu_isa) so tests run every path on one CPU.
#pragma once
#include <string>

#if defined(__GNUC__) && defined(__x86_64__)
#define KF_HAVE_X86_TARGETS 1
#define KF_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#define KF_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#else
#define KF_TARGET_AVX2
#define KF_TARGET_AVX512
#endif

// On a per-level entry point: inline everything it calls, so the level's target attribute
// reaches the lane functions of one shared body.
#if defined(__GNUC__)
#define KF_FLATTEN __attribute__((flatten))
#else
#define KF_FLATTEN
#endif

namespace kf::cpu {

// portable: baseline x86-64 (SSE2); avx2: x86-64-v3 (AVX2, FMA, BMI2, F16C); avx512: x86-64-v4
// (AVX-512 F, BW, DQ, VL).
enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

Isa detected_isa();                    // the best level this CPU supports
Isa isa();                             // the level kernels use now: detected, or lower if forced
void set_isa(const std::string& name); // "auto" | "avx512" | "avx2" | "portable"; invalid_argument if unsupported
const char* isa_name(Isa v);

}  // namespace kf::cpu

// Calls fn_avx512 / fn_avx2 / fn_portable (same arguments) by the current level. Define the
// three by instantiating one KF_INLINE body under each target attribute.
#define KF_ISA_DISPATCH(fn, ...)                                          \
  do {                                                                    \
    switch (::kf::cpu::isa()) {                                           \
      case ::kf::cpu::Isa::avx512: fn##_avx512(__VA_ARGS__); break;       \
      case ::kf::cpu::Isa::avx2: fn##_avx2(__VA_ARGS__); break;           \
      default: fn##_portable(__VA_ARGS__); break;                         \
    }                                                                     \
  } while (0)

// The one of three per-level function pointers that matches the current level (for
// kernels that pick once per call and then call per block).
#ifdef KF_HAVE_X86_TARGETS
#define KF_ISA_PICK(f512, f2, fp)                                                        \
  (::kf::cpu::isa() == ::kf::cpu::Isa::avx512 ? (f512) : ::kf::cpu::isa() == ::kf::cpu::Isa::avx2 ? (f2) : (fp))
#else
#define KF_ISA_PICK(f512, f2, fp) (fp)
#endif
