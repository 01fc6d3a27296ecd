// Exact column quantiles on the CPU by radix selection over the values' bit patterns (as on the
// GPU, kernels/cuda/quantile.cu), not by sorting or std::nth_element on every column.
// Values map to order-preserving unsigned keys (common/quantile.h); NaN is skipped. Per group of
// up to 32 columns:
//   A  histogram (OpenMP over row ranges, one read of x in its own layout): each thread counts
//      the first digit of every value, the top 12 bits of the float32 key of (float)v, into its
//      own [cols, 4096] uint32 table (16 KB per column: L2-resident). Rounding to float32 is
//      monotone, so for float64 too a bin is a contiguous run of the sorted column.
//   B  per column: the non-NaN count n, the order statistics numpy's rule reads (ranks lo / hi
//      per q), the bin each falls in and its rank inside the bin.
//   C  collect (a second read of x, the same row ranges): every value whose first digit is a
//      needed bin goes, as its exact key, into that bin's candidate buffer; the per-thread counts
//      of pass A give each thread its exact write positions (no atomics, no reallocation).
//   D  per bin (OpenMP): each needed rank by radix selection on a copy of the bin's candidates:
//      11-bit digits below the highest bit where the remaining keys differ, keeping only the
//      digit that holds the rank, until one key is left (at most 2 more rounds for float32, 5
//      for float64); a bin holding more than 4 needed ranks is sorted once instead.
// Candidates are a few percent of the data for continuous columns; a column of few distinct
// values can make a bin hold most of the column, so groups are split to keep the candidate keys
// held at once under 256 MB (one column at a time at worst, as large as one column's keys).
// Then numpy's interpolation (common/quantile.h), in float64: results equal np.nanquantile.
#include "cpu/quantile.h"

#include "common/cpu_isa.h"
#include "common/omp.h"
#include "common/quantile.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif


namespace kf::cpu {
namespace {

constexpr int kBits1 = 12, kBins1 = 1 << kBits1;     // first digit
constexpr int64_t kGroupCols = 32;                    // 32 x 16 KB of counts per thread
constexpr int64_t kCandBytes = int64_t(256) << 20;   // candidate keys held at once
constexpr int kSortRanks = 4;                         // more ranks than this in a bin: sort it

template <typename T> struct KeyOf;
template <> struct KeyOf<float> { using K = uint32_t; };
template <> struct KeyOf<double> { using K = uint64_t; };

template <typename T>
inline uint32_t digit1(T v) { return float_key(static_cast<float>(v)) >> (32 - kBits1); }

// ---- passes A and C over rows [r0, r1) of columns [c0, c0 + gc) ------------------------------
// hist [gc, kBins1]: this thread's counts.
template <typename T>
inline void hist_rows(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1, uint32_t* hist) {
  const T* d = static_cast<const T*>(x.data) + c0 * x.cs;
  if (x.rs == 1 && x.cs != 1) {  // column-major: down each column
    for (int64_t j = 0; j < gc; ++j) {
      const T* p = d + j * x.cs;
      uint32_t* h = hist + j * kBins1;
      for (int64_t r = r0; r < r1; ++r) {
        const T v = p[r];
        if (v == v) ++h[digit1(v)];
      }
    }
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = d + r * x.rs;
    for (int64_t j = 0; j < gc; ++j) {
      const T v = row[j * x.cs];
      if (v == v) ++hist[j * kBins1 + digit1(v)];
    }
  }
}

// slot [gc, kBins1]: the candidate buffer of each (column, bin), -1 when not needed;
// pos [nslots]: this thread's next write position in each buffer.
template <typename T>
inline void collect_rows(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1, const int32_t* slot,
                         int64_t* pos, typename KeyOf<T>::K* cand) {
  const T* d = static_cast<const T*>(x.data) + c0 * x.cs;
  if (x.rs == 1 && x.cs != 1) {
    for (int64_t j = 0; j < gc; ++j) {
      const T* p = d + j * x.cs;
      const int32_t* sl = slot + j * kBins1;
      for (int64_t r = r0; r < r1; ++r) {
        const T v = p[r];
        if (v != v) continue;
        const int32_t s = sl[digit1(v)];
        if (s >= 0) cand[pos[s]++] = float_key(v);
      }
    }
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const T* row = d + r * x.rs;
    for (int64_t j = 0; j < gc; ++j) {
      const T v = row[j * x.cs];
      if (v != v) continue;
      const int32_t s = slot[j * kBins1 + digit1(v)];
      if (s >= 0) cand[pos[s]++] = float_key(v);
    }
  }
}

template <typename T>
struct Passes {
  using K = typename KeyOf<T>::K;
  void (*hist)(const Mat&, int64_t, int64_t, int64_t, int64_t, uint32_t*);
  void (*collect)(const Mat&, int64_t, int64_t, int64_t, int64_t, const int32_t*, int64_t*, K*);
};

// per-level entry points: the target attribute reaches everything `flatten` inlines here
template <typename T> KF_FLATTEN void hist_portable(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1, uint32_t* h) {
  hist_rows<T>(x, c0, gc, r0, r1, h);
}
template <typename T> KF_FLATTEN void collect_portable(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1,
                                                      const int32_t* s, int64_t* p, typename KeyOf<T>::K* c) {
  collect_rows<T>(x, c0, gc, r0, r1, s, p, c);
}
#ifdef KF_HAVE_X86_TARGETS
template <typename T> KF_TARGET_AVX2 KF_FLATTEN void hist_avx2(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1, uint32_t* h) {
  hist_rows<T>(x, c0, gc, r0, r1, h);
}
template <typename T> KF_TARGET_AVX2 KF_FLATTEN void collect_avx2(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1,
                                                                 const int32_t* s, int64_t* p, typename KeyOf<T>::K* c) {
  collect_rows<T>(x, c0, gc, r0, r1, s, p, c);
}
template <typename T> KF_TARGET_AVX512 KF_FLATTEN void hist_avx512(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1, uint32_t* h) {
  hist_rows<T>(x, c0, gc, r0, r1, h);
}
template <typename T> KF_TARGET_AVX512 KF_FLATTEN void collect_avx512(const Mat& x, int64_t c0, int64_t gc, int64_t r0, int64_t r1,
                                                                     const int32_t* s, int64_t* p, typename KeyOf<T>::K* c) {
  collect_rows<T>(x, c0, gc, r0, r1, s, p, c);
}
#endif

template <typename T>
Passes<T> pick() {
#ifdef KF_HAVE_X86_TARGETS
  switch (isa()) {
    case Isa::avx512: return {&hist_avx512<T>, &collect_avx512<T>};
    case Isa::avx2: return {&hist_avx2<T>, &collect_avx2<T>};
    default: break;
  }
#endif
  return {&hist_portable<T>, &collect_portable<T>};
}

// ---- pass D ----------------------------------------------------------------------------------
template <typename K>
inline int high_bit(K v) {  // v != 0
  if constexpr (sizeof(K) == 8) return 63 - __builtin_clzll(static_cast<unsigned long long>(v));
  else return 31 - __builtin_clz(static_cast<unsigned>(v));
}

// The k-th smallest (0-based) of a[0..m), m > k >= 0; a is scratch and gets reordered.
template <typename K>
K radix_select(K* a, int64_t m, int64_t k) {
  constexpr int kBits = 11, kB = 1 << kBits;
  uint32_t cnt[kB];
  K mn = a[0], mx = a[0];
  for (int64_t i = 1; i < m; ++i) { mn = std::min(mn, a[i]); mx = std::max(mx, a[i]); }
  for (;;) {
    if (mn == mx) return mn;
    if (m <= 32) {
      std::nth_element(a, a + k, a + m);
      return a[k];
    }
    // the keys share every bit above hb: the next digit is the 11 bits from hb down
    const int hb = high_bit<K>(mn ^ mx);
    const int shift = hb + 1 > kBits ? hb + 1 - kBits : 0;
    std::memset(cnt, 0, sizeof(cnt));
    for (int64_t i = 0; i < m; ++i) ++cnt[(a[i] >> shift) & (kB - 1)];
    int d = 0;
    int64_t below = 0;
    for (; d < kB - 1 && k >= below + cnt[d]; ++d) below += cnt[d];
    k -= below;
    int64_t j = 0;
    K nmn = std::numeric_limits<K>::max(), nmx = 0;
    for (int64_t i = 0; i < m; ++i) {
      const K v = a[i];
      if (static_cast<int>((v >> shift) & (kB - 1)) == d) {
        a[j++] = v;
        nmn = std::min(nmn, v);
        nmx = std::max(nmx, v);
      }
    }
    m = j; mn = nmn; mx = nmx;
  }
}

// A needed order statistic of a column: its rank, the bin it falls in and its rank there.
struct Need {
  int64_t rank, in_bin;
  int32_t slot;
  double value;
};

struct Slot {  // one (column, bin) candidate buffer
  int64_t col, bin, begin, size;
  int64_t first_need, nneed;  // its Needs, contiguous in the column's list
};


template <typename T>
void run(const Mat& x, const double* q, int64_t nq, double* out) {
  using K = typename KeyOf<T>::K;
  const int64_t rows = x.rows, cols = x.cols;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (rows == 0) {
    std::fill(out, out + nq * cols, nan);
    return;
  }
  const Passes<T> passes = pick<T>();
  const int nt = nthreads_for(rows / 16384 + 1);
  std::vector<int64_t> rb(nt + 1);  // thread t owns rows [rb[t], rb[t + 1]) in passes A and C
  for (int t = 0; t <= nt; ++t) rb[t] = rows / nt * t + std::min<int64_t>(t, rows % nt);

  for (int64_t c0 = 0; c0 < cols; c0 += kGroupCols) {
    const int64_t gc = std::min(kGroupCols, cols - c0);
    std::vector<uint32_t> hist(static_cast<size_t>(nt * gc * kBins1), 0);  // [nt, gc, kBins1]
#pragma omp parallel num_threads(nt)
    passes.hist(x, c0, gc, rb[thread_id()], rb[thread_id() + 1], hist.data() + int64_t(thread_id()) * gc * kBins1);

    // pass B: ranks -> bins, per column
    std::vector<std::vector<Need>> need(gc);
    std::vector<int64_t> count(gc, 0);
    std::vector<Slot> slots;
    std::vector<uint64_t> tot(kBins1);
    for (int64_t j = 0; j < gc; ++j) {
      for (int b = 0; b < kBins1; ++b) {
        uint64_t s = 0;
        for (int t = 0; t < nt; ++t) s += hist[(int64_t(t) * gc + j) * kBins1 + b];
        tot[b] = s;
      }
      int64_t n = 0;
      for (int b = 0; b < kBins1; ++b) n += static_cast<int64_t>(tot[b]);
      count[j] = n;
      if (n == 0) continue;
      std::vector<Need>& nd = need[j];
      for (int64_t i = 0; i < nq; ++i) {
        const QuantileIndex qi = quantile_index(n, q[i]);
        nd.push_back(Need{qi.lo, 0, -1, 0.0});
        nd.push_back(Need{qi.hi, 0, -1, 0.0});
      }
      std::sort(nd.begin(), nd.end(), [](const Need& a, const Need& b) { return a.rank < b.rank; });
      nd.erase(std::unique(nd.begin(), nd.end(), [](const Need& a, const Need& b) { return a.rank == b.rank; }), nd.end());
      int64_t below = 0;
      int b = 0;
      for (int64_t k = 0; k < static_cast<int64_t>(nd.size()); ++k) {
        while (nd[k].rank >= below + static_cast<int64_t>(tot[b])) below += static_cast<int64_t>(tot[b++]);
        nd[k].in_bin = nd[k].rank - below;
        if (slots.empty() || slots.back().col != j || slots.back().bin != b)
          slots.push_back(Slot{j, b, 0, static_cast<int64_t>(tot[b]), k, 0});
        nd[k].slot = static_cast<int32_t>(slots.size() - 1);
        ++slots.back().nneed;
      }
    }

    // passes C and D over subgroups of columns whose candidates fit kCandBytes
    size_t s0 = 0;
    while (s0 < slots.size()) {
      size_t s1 = s0;
      int64_t keys = 0;
      while (s1 < slots.size()) {  // whole columns: extend while under budget (at least one column)
        size_t e = s1;
        int64_t ck = 0;
        while (e < slots.size() && slots[e].col == slots[s1].col) ck += slots[e++].size;
        if (s1 > s0 && (keys + ck) * int64_t(sizeof(K)) > kCandBytes) break;
        keys += ck;
        s1 = e;
      }
      const int64_t ns = static_cast<int64_t>(s1 - s0);
      std::vector<int32_t> slot_of(static_cast<size_t>(gc * kBins1), -1);
      std::vector<int64_t> pos(static_cast<size_t>(nt * ns));  // [nt, ns]
      int64_t off = 0;
      for (int64_t s = 0; s < ns; ++s) {
        Slot& sl = slots[s0 + s];
        sl.begin = off;
        slot_of[sl.col * kBins1 + sl.bin] = static_cast<int32_t>(s);
        for (int t = 0; t < nt; ++t) {
          pos[t * ns + s] = off;
          off += hist[(int64_t(t) * gc + sl.col) * kBins1 + sl.bin];
        }
      }
      std::vector<K> cand(static_cast<size_t>(std::max<int64_t>(1, keys)));
#pragma omp parallel num_threads(nt)
      passes.collect(x, c0, gc, rb[thread_id()], rb[thread_id() + 1], slot_of.data(), pos.data() + int64_t(thread_id()) * ns,
                     cand.data());

      const int ntd = nthreads_for(ns);
#pragma omp parallel num_threads(ntd)
      {
        std::vector<K> work;
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < ns; ++s) {
          const Slot& sl = slots[s0 + s];
          K* c = cand.data() + sl.begin;
          Need* nd = need[sl.col].data() + sl.first_need;
          if (sl.nneed > kSortRanks) {
            std::sort(c, c + sl.size);
            for (int64_t k = 0; k < sl.nneed; ++k) nd[k].value = static_cast<double>(key_value(c[nd[k].in_bin]));
            continue;
          }
          for (int64_t k = 0; k < sl.nneed; ++k) {
            work.assign(c, c + sl.size);
            nd[k].value = static_cast<double>(key_value(radix_select(work.data(), sl.size, nd[k].in_bin)));
          }
        }
      }
      s0 = s1;
    }

    for (int64_t j = 0; j < gc; ++j) {
      double* o = out + c0 + j;
      const int64_t n = count[j];
      if (n == 0) {
        for (int64_t i = 0; i < nq; ++i) o[i * cols] = nan;
        continue;
      }
      const std::vector<Need>& nd = need[j];
      auto value_at = [&](int64_t rank) {
        const auto it = std::lower_bound(nd.begin(), nd.end(), rank, [](const Need& a, int64_t r) { return a.rank < r; });
        return it->value;
      };
      for (int64_t i = 0; i < nq; ++i) {
        const QuantileIndex qi = quantile_index(n, q[i]);
        o[i * cols] = quantile_lerp(value_at(qi.lo), value_at(qi.hi), qi.gamma);
      }
    }
  }
}

}  // namespace

void column_quantiles(const Mat& x, const double* q, int64_t nq, double* out) {
  check_column_quantiles_args(x, q, nq, out, /*check_q=*/true);
  // per-thread uint32 counts: a thread's rows must fit them
  require(x.rows <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max()), "x must have fewer than 2^32 rows");
  if (nq == 0 || x.cols == 0) return;
  if (x.dtype == DType::f32) run<float>(x, q, nq, out);
  else run<double>(x, q, nq, out);
}

const char* column_quantiles_cpu_path() { return isa_name(isa()); }

}  // namespace kf::cpu
