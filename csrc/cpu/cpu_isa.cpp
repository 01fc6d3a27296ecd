#include "common/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace kf::cpu {
namespace {

Isa parse(const std::string& s, const char* what) {
  if (s == "avx512") return Isa::avx512;
  if (s == "avx2") return Isa::avx2;
  if (s == "portable") return Isa::portable;
  throw std::invalid_argument(std::string(what) + " must be 'auto', 'avx512', 'avx2' or 'portable', got '" + s + "'");
}

// -1 = auto; read KERNELFLOW_CPU_ISA once, on first use
std::atomic<int>& forced() {
  static std::atomic<int> f([] {
    const char* e = std::getenv("KERNELFLOW_CPU_ISA");
    if (e == nullptr || *e == '\0' || std::string(e) == "auto") return -1;
    const Isa v = parse(e, "KERNELFLOW_CPU_ISA");
    // a forced level above the CPU's would crash on an illegal instruction: cap it
    return static_cast<int>(v) > static_cast<int>(detected_isa()) ? static_cast<int>(detected_isa())
                                                                   : static_cast<int>(v);
  }());
  return f;
}

}  // namespace

Isa detected_isa() {
#ifdef KF_HAVE_X86_TARGETS
  static const Isa v = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return Isa::avx512;
    if (__builtin_cpu_supports("x86-64-v3")) return Isa::avx2;
    return Isa::portable;
  }();
  return v;
#else
  return Isa::portable;
#endif
}

Isa isa() {
  const int f = forced().load(std::memory_order_relaxed);
  return f < 0 ? detected_isa() : static_cast<Isa>(f);
}

void set_isa(const std::string& name) {
  if (name == "auto") {
    forced().store(-1);
    return;
  }
  const Isa v = parse(name, "isa");
  if (static_cast<int>(v) > static_cast<int>(detected_isa()))
    throw std::invalid_argument("isa '" + name + "' is not supported by this CPU (best: '" +
                                isa_name(detected_isa()) + "')");
  forced().store(static_cast<int>(v));
}

const char* isa_name(Isa v) {
  switch (v) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace kf::cpu
