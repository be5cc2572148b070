// Each GPU kernel of ops/cuda/ against the CPU function it mirrors (ops/), on fresh random
// inputs. Skips without a GPU (the CI machine has none; scripts/device_gpu_check.sh runs these on the
// GPU machine).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/rms_norm.h"
#include "ops/rotary_embedding.h"
#include "test_util.h"

#ifdef HLWQ_HAVE_CUDA
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_info.h"
#include "ops/cuda/kv_cache_kernels.h"
#include "ops/cuda/transformer_kernels.h"
#include "ops/cuda/device_test_util.h"
#endif

namespace hlwq {
namespace {

#ifdef HLWQ_HAVE_CUDA

using cuda::DeviceBuffer;
using cuda::check_cuda;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

TEST_F(CudaKernels, RmsNormMatchesTheCpu) {
  const int64_t rows = 37, width = 576;
  const std::vector<float> x = random_normal(rows * width, 11, 3.0f);
  const std::vector<float> weight = random_normal(width, 12);
  std::vector<float> expected(x.size());
  rms_norm(x, weight, 1e-5, expected);
  DeviceBuffer device_x = on_device(x), device_weight = on_device(weight), out(x.size());
  cuda::rms_norm_rows(device_x.data(), device_weight.data(), rows, width, 1e-5, out.data());
  EXPECT_LT(relative_error(on_host(out), expected), 1e-6);
}

// Device int32 copies of (sequence, position) pairs.
struct DevicePlaces {
  explicit DevicePlaces(const std::vector<int32_t>& pairs) {
    void* memory = nullptr;
    check_cuda(cudaMalloc(&memory, pairs.size() * sizeof(int32_t)), "cudaMalloc");
    data = static_cast<int32_t*>(memory);
    check_cuda(cudaMemcpy(data, pairs.data(), pairs.size() * sizeof(int32_t), cudaMemcpyHostToDevice), "copy");
  }
  ~DevicePlaces() { cudaFree(data); }
  int32_t* data = nullptr;
};

TEST_F(CudaKernels, RopeAtPlacesMatchesTheCpu) {
  const int64_t tokens = 19, heads = 3, head_dim = 64, positions = 40;
  RopeScaling scaling;
  scaling.type = RopeScalingType::llama3;
  scaling.factor = 8;
  scaling.original_max_position_embeddings = 16;
  const std::vector<double> frequencies = rope_inverse_frequencies(head_dim, 500000.0, scaling);
  std::vector<float> cosines, sines;
  for (int64_t p = 0; p < positions; ++p) {
    for (double f : frequencies) {
      cosines.push_back(static_cast<float>(std::cos(p * f)));
      sines.push_back(static_cast<float>(std::sin(p * f)));
    }
  }
  // Rows at scattered positions of two sequences, as a batched decode has them.
  std::vector<int32_t> places;
  for (int64_t t = 0; t < tokens; ++t) {
    places.push_back(static_cast<int32_t>(t % 2));
    places.push_back(static_cast<int32_t>((t * 7 + 3) % positions));
  }
  std::vector<float> x = random_normal(tokens * heads * head_dim, 13);
  DeviceBuffer device_x = on_device(x), device_cos = on_device(cosines), device_sin = on_device(sines);
  DevicePlaces device_places(places);
  cuda::apply_rope_at_places(device_x.data(), tokens, heads, head_dim, head_dim / 2, device_places.data, device_cos.data(),
                             device_sin.data(), positions);
  for (int64_t t = 0; t < tokens; ++t) {
    apply_rope(std::span<float>(x).subspan(t * heads * head_dim, heads * head_dim), head_dim, places[2 * t + 1],
               frequencies);
  }
  EXPECT_LT(relative_error(on_host(device_x), x), 1e-6);
}

cuda::CacheStorage storage_of(DType dtype) {
  return dtype == DType::F32 ? cuda::CacheStorage::f32
                             : dtype == DType::F16 ? cuda::CacheStorage::f16 : cuda::CacheStorage::bf16;
}

// Keys and values stored by the GPU equal the CPU cache's bit for bit (both round to nearest even),
// and attention over them matches the CPU's, for rows of two sequences at scattered positions.
TEST_F(CudaKernels, KvCacheStoreAndAttentionMatchTheCpu) {
  const int64_t heads = 6, kv_heads = 2, head_dim = 96, context = 300, layers = 2, layer = 1;
  const int64_t kv_width = kv_heads * head_dim;
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    // Sequence 0 fills positions 0..289 (more than one round of the online softmax), sequence 1 0..40.
    const int64_t filled[] = {290, 41};
    std::vector<KvCache> cpu;
    std::vector<int32_t> places;
    std::vector<float> keys, values;
    for (int64_t sequence = 0; sequence < 2; ++sequence) {
      cpu.emplace_back(layers, kv_heads, head_dim, context, dtype);
      const std::vector<float> k = random_normal(filled[sequence] * kv_width, 30 + sequence, 2.0f);
      const std::vector<float> v = random_normal(filled[sequence] * kv_width, 40 + sequence);
      for (int64_t p = 0; p < filled[sequence]; ++p) {
        cpu.back().store(layer, p, std::span<const float>(k).subspan(p * kv_width, kv_width),
                         std::span<const float>(v).subspan(p * kv_width, kv_width));
        places.push_back(static_cast<int32_t>(sequence));
        places.push_back(static_cast<int32_t>(p));
      }
      keys.insert(keys.end(), k.begin(), k.end());
      values.insert(values.end(), v.begin(), v.end());
    }
    const int64_t rows = static_cast<int64_t>(places.size() / 2);
    const size_t element = dtype_size(dtype);
    const size_t cache_bytes = static_cast<size_t>(2 * layers * context * kv_width) * element;
    void* cache_keys = nullptr;
    void* cache_values = nullptr;
    check_cuda(cudaMalloc(&cache_keys, cache_bytes), "cudaMalloc");
    check_cuda(cudaMalloc(&cache_values, cache_bytes), "cudaMalloc");
    const cuda::DeviceKvCache cache{cache_keys, cache_values, storage_of(dtype), 2, layers, context, kv_heads,
                                    head_dim};
    DeviceBuffer device_keys = on_device(keys), device_values = on_device(values);
    DevicePlaces all_places(places);
    cuda::store_kv_rows(cache, layer, device_keys.data(), device_values.data(), rows, all_places.data, nullptr);
    // The stored bytes of sequence 1, position 40, equal the CPU cache's.
    std::vector<std::byte> stored(static_cast<size_t>(kv_width) * element);
    const size_t offset = static_cast<size_t>(((1 * layers + layer) * context + 40) * kv_width) * element;
    check_cuda(cudaMemcpy(stored.data(), static_cast<std::byte*>(cache_keys) + offset, stored.size(),
                          cudaMemcpyDeviceToHost),
               "copy");
    const std::span<const std::byte> expected_bytes =
        cpu[1].layer_keys(layer).subspan(static_cast<size_t>(40 * kv_width) * element, stored.size());
    EXPECT_TRUE(std::equal(stored.begin(), stored.end(), expected_bytes.begin())) << dtype_name(dtype);
    // Queries at a few places of each sequence.
    const std::vector<int32_t> query_places = {0, 289, 1, 0, 0, 100, 1, 40, 0, 255, 0, 256};
    const int64_t queries_count = static_cast<int64_t>(query_places.size() / 2);
    const std::vector<float> queries = random_normal(queries_count * heads * head_dim, 50, 2.0f);
    DeviceBuffer device_queries = on_device(queries), out(queries.size());
    DevicePlaces device_query_places(query_places);
    ThreadPool pool(2);
    for (double scale : {1.0 / std::sqrt(static_cast<double>(head_dim)), 1.0 / std::sqrt(24.0)}) {
      std::vector<float> expected(queries.size());
      for (int64_t q = 0; q < queries_count; ++q) {
        const int64_t width = heads * head_dim;
        causal_attention(std::span<const float>(queries).subspan(q * width, width), 1, query_places[2 * q + 1], layer,
                         cpu[query_places[2 * q]], AttentionShape{heads, kv_heads, head_dim, scale},
                         std::span<float>(expected).subspan(q * width, width), pool);
      }
      cuda::cache_attention(cache, layer, device_queries.data(), queries_count, heads, static_cast<float>(scale),
                            device_query_places.data, out.data(), nullptr);
      EXPECT_LT(relative_error(on_host(out), expected), 1e-5) << dtype_name(dtype) << " scale " << scale;
      // Split-KV: 1, 3 and 7 shares of each row's positions (some empty at position 0), combined.
      for (int64_t splits : {int64_t{3}, int64_t{7}}) {
        DeviceBuffer partials(static_cast<size_t>(cuda::attention_partial_floats(cache, queries_count, heads, splits)));
        DeviceBuffer split_out(queries.size());
        cuda::cache_attention(cache, layer, device_queries.data(), queries_count, heads, static_cast<float>(scale),
                              device_query_places.data, split_out.data(), nullptr, splits, partials.data());
        EXPECT_LT(relative_error(on_host(split_out), expected), 1e-5)
            << dtype_name(dtype) << " scale " << scale << ", " << splits << " splits";
      }
    }
    cudaFree(cache_keys);
    cudaFree(cache_values);
  }
}

TEST_F(CudaKernels, SiluMulAndAddMatchTheCpu) {
  const std::vector<float> gate = random_normal(10000, 18, 4.0f), up = random_normal(10000, 19);
  std::vector<float> expected(gate.size());
  silu_mul(gate, up, expected);
  DeviceBuffer device_gate = on_device(gate), device_up = on_device(up);
  cuda::silu_mul(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_error(on_host(device_gate), expected), 1e-6);

  std::vector<float> sum = expected;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += up[i];
  cuda::add_in_place(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_error(on_host(device_gate), sum), 1e-6);
}

TEST_F(CudaKernels, GeluTanhMulMatchesTheCpu) {
  const std::vector<float> gate = random_normal(10000, 20, 4.0f), up = random_normal(10000, 21);
  std::vector<float> expected(gate.size());
  gelu_tanh_mul(gate, up, expected);
  DeviceBuffer device_gate = on_device(gate), device_up = on_device(up);
  cuda::gelu_tanh_mul(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_error(on_host(device_gate), expected), 1e-6);
}

TEST_F(CudaKernels, RowBiasMatchesTheHost) {
  const int64_t tokens = 33, rows = 70;
  const std::vector<float> y = random_normal(tokens * rows, 20), bias = random_normal(rows, 22);
  std::vector<float> expected(y.size());
  for (size_t i = 0; i < y.size(); ++i) expected[i] = y[i] + bias[i % rows];
  DeviceBuffer device_y = on_device(y), device_bias = on_device(bias);
  cuda::add_row_bias(device_y.data(), device_bias.data(), tokens, rows);
  EXPECT_LT(relative_error(on_host(device_y), expected), 1e-7);
}

TEST_F(CudaKernels, ErrorsAreOneLineHlwqErrors) {
  DeviceBuffer small(4);
  std::vector<float> host(8);
  EXPECT_NE(error_message([&] { small.upload(host.data(), host.size()); }).find("upload of 8 floats"),
            std::string::npos);
  // Heads that do not share kv heads evenly.
  const cuda::DeviceKvCache cache{small.data(), small.data(), cuda::CacheStorage::f32, 1, 1, 1, 4, 1};
  EXPECT_NE(error_message([&] {
              cuda::cache_attention(cache, 0, small.data(), 1, 6, 1.0f, nullptr, small.data(), nullptr);
            }).find("6 heads over 4 kv heads"),
            std::string::npos);
}

#endif  // HLWQ_HAVE_CUDA

}  // namespace
}  // namespace hlwq
