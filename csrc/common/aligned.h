// std::vector storage aligned to a cache line (64 bytes), for the scratch buffers kernels read in
// whole lines or as AMX tiles. A 64-byte tile row at a 16-byte offset (what malloc returns for a
// large block) straddles two lines: measured on one Intel Xeon core, a tile load from L1 took
// 16.6 ns from such a buffer and 2.4 ns from an aligned one.
// Elements are default-initialised: AlignedVector<uint8_t> v(n) is NOT zeroed (the buffers are
// written whole by the kernel that fills them, so a memset first would be a wasted pass); give a
// value, v(n, 0), where zeros are needed.
#pragma once
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace kf {

template <class T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Align)); }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) ::new (static_cast<void*>(p)) U;
    else ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  friend bool operator==(const AlignedAllocator&, const AlignedAllocator&) noexcept { return true; }
  friend bool operator!=(const AlignedAllocator&, const AlignedAllocator&) noexcept { return false; }
};

template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace kf
