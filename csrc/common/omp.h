// OpenMP team helpers that also compile without OpenMP (one thread).
#pragma once
#include <algorithm>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kf::cpu {

// Threads for `work` independent items: never more threads than items.
inline int nthreads_for(int64_t work) {
#ifdef _OPENMP
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), work)));
#else
  (void)work;
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace kf::cpu
