// Output stores of the streaming CPU kernels (transform, table, one-hot): each output byte is
// written once and not read back by the kernel, so an output larger than the cache goes out with
// non-temporal stores (no read-for-ownership of lines about to be overwritten, no eviction of the
// input being streamed in). The threshold is the last-level cache size unless set
// (kernelflow._C.set_xform_nt_threshold; tests set 0 to run the streaming path on small data).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/array.h"
#include "common/simd.h"

namespace kf::cpu {

inline int64_t dtype_bytes(DType d) {
  switch (d) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::f16: case DType::bf16: return 2;
    default: return 1;
  }
}

// -1: automatic (the last-level cache size); otherwise outputs of at least this many bytes stream.
inline std::atomic<int64_t>& nt_threshold_setting() {
  static std::atomic<int64_t> v{-1};
  return v;
}

inline int64_t last_level_cache_bytes() {
  static const int64_t v = [] {
    int64_t b = 0;
#if defined(__linux__) && defined(_SC_LEVEL3_CACHE_SIZE)
    b = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (b <= 0) b = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return b > 0 ? b : int64_t(32) << 20;
  }();
  return v;
}

inline int64_t nt_threshold() {
  const int64_t t = nt_threshold_setting().load(std::memory_order_relaxed);
  return t < 0 ? last_level_cache_bytes() : t;
}

// Non-temporal stores need SSE2 (baseline x86-64: usable from every ISA level's code).
inline bool use_nt_stores(int64_t out_bytes) {
#if defined(__SSE2__)
  return out_bytes > 0 && out_bytes >= nt_threshold();
#else
  (void)out_bytes;
  return false;
#endif
}

// Store BYTES (a multiple of 16) from the aligned buffer src to dst; nt: streaming stores, dst
// 16-byte aligned. The plain path is a memcpy the compiler turns into the level's widest moves.
template <size_t BYTES>
KF_INLINE void store_block(void* __restrict dst, const void* __restrict src, bool nt) {
  static_assert(BYTES % 16 == 0, "store_block writes whole 16-byte vectors");
#if defined(__SSE2__)
  if (nt) {
    for (size_t i = 0; i < BYTES; i += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(static_cast<char*>(dst) + i),
                       _mm_load_si128(reinterpret_cast<const __m128i*>(static_cast<const char*>(src) + i)));
    return;
  }
#endif
  (void)nt;
  std::memcpy(dst, src, BYTES);
}

// Copy n bytes with streaming stores where dst allows (16-byte aligned middle part).
inline void stream_copy(char* __restrict dst, const char* __restrict src, size_t n, bool nt) {
#if defined(__SSE2__)
  if (nt) {
    size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
    if (head > n) head = n;
    std::memcpy(dst, src, head);
    size_t i = head;
    for (; i + 16 <= n; i += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    std::memcpy(dst + i, src + i, n - i);
    return;
  }
#endif
  (void)nt;
  std::memcpy(dst, src, n);
}

// A fresh output (just allocated, not yet touched) costs a page fault per page on its first write,
// and the kernel zero-fills every page it maps. torch's CPU allocator, unlike numpy's, does not ask
// for transparent huge pages, so with THP in "madvise" mode (the common default) a 128 MB output
// takes 32768 4 KB faults, about as long as the whole transform. advise_fresh asks for 2 MB pages on
// the huge pages wholly inside [p, p + n) (advice only: errors are ignored, memory stays the
// caller's); outputs below 4 MB are left alone, as numpy does.
constexpr int64_t kHugePage = int64_t(2) << 20;
inline void advise_fresh(void* p, int64_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (n < 2 * kHugePage) return;
  const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(n)) & ~uintptr_t(kHugePage - 1);
  if (b > a) (void)madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
#else
  (void)p; (void)n;
#endif
}

// Streamed stores are weakly ordered: fence them before the kernel returns.
inline void stream_fence(bool nt) {
#if defined(__SSE2__)
  if (nt) _mm_sfence();
#endif
  (void)nt;
}

inline int thread_num() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int num_threads() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace kf::cpu
