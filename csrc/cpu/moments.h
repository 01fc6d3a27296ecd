// Running per-column moments (float64) and their exact merge, shared by the column-statistics
// kernels (stats, weighted): one definition of the merge and of the [6, cols] output layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace kf::cpu {

struct Moments {
  // w: total weight (the row count for unweighted statistics); each vector has one entry per column
  std::vector<double> w, nan, mean, m2, mn, mx;
  explicit Moments(int64_t c)
      : w(c, 0.0), nan(c, 0.0), mean(c, 0.0), m2(c, 0.0),
        mn(c, std::numeric_limits<double>::infinity()), mx(c, -std::numeric_limits<double>::infinity()) {}

  // Chan et al.: merge a summary (wb, meanb, m2b, ...) of column j into this one.
  void merge(int64_t j, double wb, double nanb, double meanb, double m2b, double mnb, double mxb) {
    nan[j] += nanb;
    mn[j] = std::min(mn[j], mnb);
    mx[j] = std::max(mx[j], mxb);
    if (wb == 0.0) return;
    if (w[j] == 0.0) { w[j] = wb; mean[j] = meanb; m2[j] = m2b; return; }  // no 0 * inf when |mean| is huge
    const double wa = w[j], wt = wa + wb;
    if (wt == 0.0) { w[j] = 0.0; return; }
    const double d = meanb - mean[j];
    mean[j] += d * (wb / wt);
    m2[j] += m2b + d * d * (wa * wb / wt);
    w[j] = wt;
  }

  void merge(const Moments& o) {
    for (int64_t j = 0; j < static_cast<int64_t>(w.size()); ++j)
      merge(j, o.w[j], o.nan[j], o.mean[j], o.m2[j], o.mn[j], o.mx[j]);
  }

  // out: [6, cols] float64 rows (weight or count, NaN count, mean, M2, min, max)
  void write(double* out) const {
    const int64_t cols = static_cast<int64_t>(w.size());
    const std::vector<double>* rows[6] = {&w, &nan, &mean, &m2, &mn, &mx};
    for (int r = 0; r < 6; ++r) std::copy(rows[r]->begin(), rows[r]->end(), out + r * cols);
  }
};

}  // namespace kf::cpu
