// Which code path the CPU int8 GEMMs run (int8_pack.h): the CPU's features, the process-wide level
// of kf::cpu::isa(), and this family's own override (KERNELFLOW_INT8_PATH / set_int8_path).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/cpu_amx.h"
#include "common/cpu_isa.h"
#include "cpu/int8_pack.h"

namespace kf::cpu {

bool int8_path_supported(Int8Path p) {
  switch (p) {
    case Int8Path::portable: return true;
#if defined(__GNUC__) && defined(__x86_64__)
    case Int8Path::avx2: {
      static const bool v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
      return v;
    }
    case Int8Path::avx512: {
      static const bool v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512vnni");
      return v;
    }
    case Int8Path::amx: return int8_path_supported(Int8Path::avx512) && amx_support().int8;
#endif
    default: return false;
  }
}

const char* int8_path_name(Int8Path p) {
  switch (p) {
    case Int8Path::amx: return "amx";
    case Int8Path::avx512: return "avx512";
    case Int8Path::avx2: return "avx2";
    default: return "portable";
  }
}

namespace {

// -1: auto. Initialised from KERNELFLOW_INT8_PATH so benchmarks and tests can force a path for a
// whole process.
int initial_forced() {
  const char* e = std::getenv("KERNELFLOW_INT8_PATH");
  if (!e || !*e || std::strcmp(e, "auto") == 0) return -1;
  for (Int8Path p : kInt8Paths)
    if (std::strcmp(e, int8_path_name(p)) == 0 && int8_path_supported(p)) return static_cast<int>(p);
  return -1;  // an unknown or unsupported name cannot raise at load time: auto (set_int8_path reports it)
}

std::atomic<int>& forced() {
  static std::atomic<int> f{initial_forced()};
  return f;
}

}  // namespace

Int8Path int8_path() {
  const int f = forced().load(std::memory_order_relaxed);
  if (f >= 0) return static_cast<Int8Path>(f);
  const Isa level = isa();
  if (level == Isa::avx512 && int8_path_supported(Int8Path::amx)) return Int8Path::amx;
  if (level == Isa::avx512 && int8_path_supported(Int8Path::avx512)) return Int8Path::avx512;
  if (level != Isa::portable && int8_path_supported(Int8Path::avx2)) return Int8Path::avx2;
  return Int8Path::portable;
}

void set_int8_path(const std::string& name) {
  if (name == "auto") return forced().store(-1);
  for (Int8Path p : kInt8Paths)
    if (name == int8_path_name(p)) {
      require(int8_path_supported(p), "int8 path '" + name + "' is not supported by this CPU" +
                                          (p == Int8Path::amx ? " and OS (needs AMX-INT8, the OS's tile state and the "
                                                                "arch_prctl tile permission)" : ""));
      return forced().store(static_cast<int>(p));
    }
  throw std::invalid_argument("path must be one of 'auto', 'portable', 'avx2', 'avx512', 'amx'; got '" + name + "'");
}

}  // namespace kf::cpu
