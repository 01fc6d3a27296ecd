// Function multi-versioning for the CPU kernels: the wheel targets baseline x86-64, and
// KF_CLONES compiles a function again for x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), picked
// once at load time by the dynamic linker (GCC target_clones / ifunc). Put it on non-template
// leaf functions (not on functions holding OpenMP regions: the outlined region is not cloned).
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define KF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define KF_INLINE inline __attribute__((always_inline))
#else
#define KF_CLONES
#define KF_INLINE inline
#endif
