// Owned GPU memory of floats (cudaMalloc, freed on destruction) and the error check every CUDA call
// here goes through: a failed call becomes an hlwq::Error naming the call and CUDA's reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace hlwq::cuda {

// Throws hlwq::Error("CUDA <what>: <CUDA's message>") unless status is cudaSuccess (0).
void check_cuda(int status, const char* what);

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t floats);
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~DeviceBuffer();

  float* data() const { return data_; }
  size_t size() const { return size_; }
  // Host <-> device copies of `count` floats starting at element `offset`; bounds are checked.
  void upload(const float* host, size_t count, size_t offset = 0);
  void download(float* host, size_t count, size_t offset = 0) const;

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

// Page-locked host memory (cudaMallocHost): device-to-host copies into it run at the link's full
// speed (about 25 GB/s on PCIe 5) instead of staging through the driver's bounce buffers.
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  explicit PinnedHostBuffer(size_t floats);
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer(PinnedHostBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  PinnedHostBuffer& operator=(PinnedHostBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~PinnedHostBuffer();

  float* data() const { return data_; }
  size_t size() const { return size_; }
  // Copies `count` floats of `source` (from element 0) into this buffer; waits for the copy.
  void download_from(const DeviceBuffer& source, size_t count);

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hlwq::cuda
