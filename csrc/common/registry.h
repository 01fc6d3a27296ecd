// Each op family registers its pybind11 bindings from its own csrc/bind/<family>.cpp, so adding
// a family touches no shared file: bindings.cpp runs every registered binder in name order.
#pragma once
#include <pybind11/pybind11.h>
#include <functional>
#include <map>
#include <string>

namespace kf {

using Binder = std::function<void(pybind11::module_&)>;

inline std::map<std::string, Binder>& binders() {
  static std::map<std::string, Binder> b;
  return b;
}

struct RegisterFamily {
  RegisterFamily(const char* family, Binder fn) { binders().emplace(family, std::move(fn)); }
};

}  // namespace kf

#define KF_REGISTER_FAMILY(family, fn) static ::kf::RegisterFamily kf_register_##family(#family, fn)
