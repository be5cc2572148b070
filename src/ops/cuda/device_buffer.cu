#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/device_buffer.h"

namespace hlwq::cuda {

void check_cuda(int status, const char* what) {
  if (status == cudaSuccess) return;
  const auto error = static_cast<cudaError_t>(status);
  cudaGetLastError();  // clear a sticky error so that the next call reports its own
  fail("CUDA ", what, ": ", cudaGetErrorString(error));
}

DeviceBuffer::DeviceBuffer(size_t floats) : size_(floats) {
  if (floats == 0) return;
  void* pointer = nullptr;
  check_cuda(cudaMalloc(&pointer, floats * sizeof(float)), "cudaMalloc");
  data_ = static_cast<float*>(pointer);
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

void DeviceBuffer::upload(const float* host, size_t count, size_t offset) {
  check(offset + count <= size_, "upload of ", count, " floats at ", offset, " into a buffer of ", size_);
  if (count == 0) return;
  check_cuda(cudaMemcpy(data_ + offset, host, count * sizeof(float), cudaMemcpyHostToDevice), "upload");
}

void DeviceBuffer::download(float* host, size_t count, size_t offset) const {
  check(offset + count <= size_, "download of ", count, " floats at ", offset, " from a buffer of ", size_);
  if (count == 0) return;
  check_cuda(cudaMemcpy(host, data_ + offset, count * sizeof(float), cudaMemcpyDeviceToHost), "download");
}

PinnedHostBuffer::PinnedHostBuffer(size_t floats) : size_(floats) {
  if (floats == 0) return;
  void* pointer = nullptr;
  check_cuda(cudaMallocHost(&pointer, floats * sizeof(float)), "cudaMallocHost");
  data_ = static_cast<float*>(pointer);
}

PinnedHostBuffer::~PinnedHostBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

void PinnedHostBuffer::download_from(const DeviceBuffer& source, size_t count) {
  check(count <= size_ && count <= source.size(), "download of ", count, " floats into a pinned buffer of ", size_);
  if (count == 0) return;
  check_cuda(cudaMemcpy(data_, source.data(), count * sizeof(float), cudaMemcpyDeviceToHost), "download");
}

}  // namespace hlwq::cuda
