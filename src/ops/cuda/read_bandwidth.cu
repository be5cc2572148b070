// The card's streaming read bandwidth as our own kernel measures it: the roofline the GEMV timings
// are divided by (bench/cuda/linear_versions). A grid-stride sum of 16-byte loads, four in flight
// per thread, one atomic per CTA; the result is kept so the loads cannot be optimized away.
#include "ops/cuda/gemv_common.cuh"

namespace hlwq::cuda::kernels {
namespace {

__global__ void __launch_bounds__(256) streaming_read_sum_kernel(const float4* data, size_t vectors, float* sum) {
  float total = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < vectors; i += 4 * stride) {
    const float4 a = __ldg(data + i), b = __ldg(data + i + stride), c = __ldg(data + i + 2 * stride),
                 d = __ldg(data + i + 3 * stride);
    total += (a.x + a.y + a.z + a.w) + (b.x + b.y + b.z + b.w) + (c.x + c.y + c.z + c.w) + (d.x + d.y + d.z + d.w);
  }
  for (; i < vectors; i += stride) {
    const float4 a = __ldg(data + i);
    total += a.x + a.y + a.z + a.w;
  }
  total = warp_sum(total);
  if (threadIdx.x % 32 == 0) atomicAdd(sum, total);
}

}  // namespace

void streaming_read_sum(const float* data, size_t floats, float* sum, cudaStream_t stream) {
  int device = 0, sms = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check_cuda(cudaMemsetAsync(sum, 0, sizeof(float), stream), "cudaMemsetAsync");
  streaming_read_sum_kernel<<<sms * 8, 256, 0, stream>>>(reinterpret_cast<const float4*>(data), floats / 4, sum);
  check_launch("streaming read");
}

}  // namespace hlwq::cuda::kernels
