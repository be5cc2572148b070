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

float* allocate_floats(MemoryKind kind, size_t floats) {
  if (floats == 0) return nullptr;
  void* pointer = nullptr;
  if (kind == MemoryKind::device) {
    check_cuda(cudaMalloc(&pointer, floats * sizeof(float)), "cudaMalloc");
  } else {
    check_cuda(cudaMallocHost(&pointer, floats * sizeof(float)), "cudaMallocHost");
  }
  return static_cast<float*>(pointer);
}

void free_floats(MemoryKind kind, float* data) {
  if (data == nullptr) return;
  if (kind == MemoryKind::device) {
    cudaFree(data);
  } else {
    cudaFreeHost(data);
  }
}

void DeviceBuffer::upload(const float* host, size_t count, size_t offset) {
  check(offset + count <= size(), "upload of ", count, " floats at ", offset, " into a buffer of ", size());
  if (count == 0) return;
  check_cuda(cudaMemcpy(data() + offset, host, count * sizeof(float), cudaMemcpyHostToDevice), "upload");
}

void DeviceBuffer::download(float* host, size_t count, size_t offset) const {
  check(offset + count <= size(), "download of ", count, " floats at ", offset, " from a buffer of ", size());
  if (count == 0) return;
  check_cuda(cudaMemcpy(host, data() + offset, count * sizeof(float), cudaMemcpyDeviceToHost), "download");
}

void PinnedHostBuffer::download_from(const DeviceBuffer& source, size_t count) {
  check(count <= size() && count <= source.size(), "download of ", count, " floats into a pinned buffer of ",
        size());
  if (count == 0) return;
  check_cuda(cudaMemcpy(data(), source.data(), count * sizeof(float), cudaMemcpyDeviceToHost), "download");
}

}  // namespace hlwq::cuda
