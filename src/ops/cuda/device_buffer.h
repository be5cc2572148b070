// Owned CUDA memory of floats, freed on destruction: on the GPU (cudaMalloc) or page-locked on the
// host (cudaMallocHost: device-to-host copies into it run at the link's full speed, about 25 GB/s on
// PCIe 5, instead of staging through the driver's bounce buffers). Every CUDA call here goes through
// check_cuda: a failed call becomes an hlwq::Error naming the call and CUDA's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace hlwq::cuda {

// Throws hlwq::Error("CUDA <what>: <CUDA's message>") unless status is cudaSuccess (0).
void check_cuda(int status, const char* what);

enum class MemoryKind { device, pinned_host };

// Allocation and release of `floats` floats of the kind (defined in device_buffer.cu).
float* allocate_floats(MemoryKind kind, size_t floats);
void free_floats(MemoryKind kind, float* data);

template <MemoryKind kKind>
class CudaFloats {
 public:
  CudaFloats() = default;
  explicit CudaFloats(size_t floats) : data_(allocate_floats(kKind, floats)), size_(floats) {}
  CudaFloats(const CudaFloats&) = delete;
  CudaFloats& operator=(const CudaFloats&) = delete;
  CudaFloats(CudaFloats&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  CudaFloats& operator=(CudaFloats&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~CudaFloats() { free_floats(kKind, data_); }

  float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

class DeviceBuffer : public CudaFloats<MemoryKind::device> {
 public:
  using CudaFloats::CudaFloats;
  // Host <-> device copies of `count` floats starting at element `offset`; bounds are checked.
  void upload(const float* host, size_t count, size_t offset = 0);
  void download(float* host, size_t count, size_t offset = 0) const;
};

class PinnedHostBuffer : public CudaFloats<MemoryKind::pinned_host> {
 public:
  using CudaFloats::CudaFloats;
  // Copies `count` floats of `source` (from element 0) into this buffer; waits for the copy.
  void download_from(const DeviceBuffer& source, size_t count);
};

}  // namespace hlwq::cuda
