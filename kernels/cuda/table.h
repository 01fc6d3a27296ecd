#pragma once
#include <cstdint>

#include "common/table.h"

namespace kf::cuda {
// Device version of kf::cpu::table_transform; every pointer in spec is a device pointer.
void table_transform(const Mat& xnum, const Mat& codes, const TableSpec& spec, const Mat& out, uintptr_t stream);
}  // namespace kf::cuda
