#pragma once
#include <cstdint>

#include "common/table.h"

namespace kf::cpu {
// One pass over the rows (layout and checks: common/table.h): xnum [N, Fn] float32/float64 (any
// strides), codes [N, Fc] int32 (any strides; >= 0 category index, < 0 unknown), out [N, W]
// float32/float64/float16/bfloat16 (unit column stride). Every output element is written; numeric
// arithmetic in float64, rounded once to the output type (float16 / bfloat16: through float32).
void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& spec, const Mat& out);

// The code path table_transform takes now: the run-time ISA level ("avx512", "avx2", "portable").
const char* table_cpu_path();
}  // namespace kf::cpu
