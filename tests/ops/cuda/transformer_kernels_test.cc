// Each GPU kernel of ops/cuda/ against the CPU function it mirrors (engine/), on fresh random
// inputs. Skips without a GPU (the CI machine has none; scripts/device_gpu_check.sh runs these on the
// GPU machine).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/activation.h"
#include "engine/attention.h"
#include "engine/rms_norm.h"
#include "engine/rotary_embedding.h"
#include "test_util.h"

#ifdef HLWQ_HAVE_CUDA
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_info.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/transformer_kernels.h"
#endif

namespace hlwq {
namespace {

#ifdef HLWQ_HAVE_CUDA

using cuda::DeviceBuffer;

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

DeviceBuffer on_device(const std::vector<float>& values) {
  DeviceBuffer buffer(values.size());
  buffer.upload(values.data(), values.size());
  return buffer;
}

std::vector<float> on_host(const DeviceBuffer& buffer) {
  std::vector<float> values(buffer.size());
  buffer.download(values.data(), values.size());
  return values;
}

// max |a - b| / max |b|: one relative bound per test, independent of the values' scale.
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double largest_difference = 0, largest = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    largest_difference = std::max(largest_difference, std::fabs(static_cast<double>(a[i]) - b[i]));
    largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
  }
  return largest > 0 ? largest_difference / largest : largest_difference;
}

TEST_F(CudaKernels, RmsNormMatchesTheCpu) {
  const int64_t rows = 37, width = 576;
  const std::vector<float> x = random_normal(rows * width, 11, 3.0f);
  const std::vector<float> weight = random_normal(width, 12);
  std::vector<float> expected(x.size());
  rms_norm(x, weight, 1e-5, expected);
  DeviceBuffer device_x = on_device(x), device_weight = on_device(weight), out(x.size());
  cuda::rms_norm_rows(device_x.data(), device_weight.data(), rows, width, 1e-5, out.data());
  EXPECT_LT(relative_difference(on_host(out), expected), 1e-6);
}

TEST_F(CudaKernels, RopeMatchesTheCpu) {
  const int64_t tokens = 19, heads = 3, head_dim = 64, first = 5, positions = first + tokens;
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
  std::vector<float> x = random_normal(tokens * heads * head_dim, 13);
  DeviceBuffer device_x = on_device(x), device_cos = on_device(cosines), device_sin = on_device(sines);
  cuda::apply_rope_rows(device_x.data(), tokens, heads, head_dim, first, device_cos.data(), device_sin.data());
  for (int64_t t = 0; t < tokens; ++t) {
    apply_rope(std::span<float>(x).subspan(t * heads * head_dim, heads * head_dim), head_dim, first + t, frequencies);
  }
  EXPECT_LT(relative_difference(on_host(device_x), x), 1e-6);
}

TEST_F(CudaKernels, RoundingMatchesTheKvCache) {
  const std::vector<float> values = random_normal(4096, 14, 50.0f);
  for (DType dtype : {DType::F16, DType::BF16}) {
    KvCache cache(1, 1, static_cast<int64_t>(values.size()), 1, dtype);
    cache.store(0, 0, values, values);
    std::vector<float> expected(values.size());
    cache.read_key(0, 0, 0, expected);
    DeviceBuffer device = on_device(values);
    cuda::round_to_storage(device.data(), static_cast<int64_t>(values.size()),
                           dtype == DType::F16 ? cuda::StorageRounding::f16 : cuda::StorageRounding::bf16);
    EXPECT_EQ(on_host(device), expected) << dtype_name(dtype);
  }
}

TEST_F(CudaKernels, CausalAttentionMatchesTheCpu) {
  // GQA (6 query heads over 2 kv heads), a pass that starts after cached positions.
  const int64_t heads = 6, kv_heads = 2, head_dim = 64, first = 7, tokens = 29, positions = first + tokens;
  const int64_t kv_width = kv_heads * head_dim;
  const std::vector<float> queries = random_normal(tokens * heads * head_dim, 15, 2.0f);
  const std::vector<float> keys = random_normal(positions * kv_width, 16, 2.0f);
  const std::vector<float> values = random_normal(positions * kv_width, 17);
  KvCache cache(1, kv_heads, head_dim, positions, DType::F32);
  for (int64_t p = 0; p < positions; ++p) {
    cache.store(0, p, std::span<const float>(keys).subspan(p * kv_width, kv_width),
                std::span<const float>(values).subspan(p * kv_width, kv_width));
  }
  ThreadPool pool(2);
  std::vector<float> expected(queries.size());
  causal_attention(queries, tokens, first, 0, cache, AttentionShape{heads, kv_heads, head_dim}, expected, pool);
  DeviceBuffer device_q = on_device(queries), device_k = on_device(keys), device_v = on_device(values);
  DeviceBuffer out(queries.size());
  const double default_scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  cuda::causal_attention(device_q.data(), device_k.data(), device_v.data(), tokens, first, heads, kv_heads, head_dim,
                         default_scale, out.data());
  EXPECT_LT(relative_difference(on_host(out), expected), 1e-5);
  // Another scale (gemma3: query_pre_attn_scalar^-0.5) on both sides.
  const double other_scale = 1.0 / std::sqrt(24.0);
  causal_attention(queries, tokens, first, 0, cache, AttentionShape{heads, kv_heads, head_dim, other_scale}, expected,
                   pool);
  cuda::causal_attention(device_q.data(), device_k.data(), device_v.data(), tokens, first, heads, kv_heads, head_dim,
                         other_scale, out.data());
  EXPECT_LT(relative_difference(on_host(out), expected), 1e-5);
}

TEST_F(CudaKernels, SiluMulAndAddMatchTheCpu) {
  const std::vector<float> gate = random_normal(10000, 18, 4.0f), up = random_normal(10000, 19);
  std::vector<float> expected(gate.size());
  silu_mul(gate, up, expected);
  DeviceBuffer device_gate = on_device(gate), device_up = on_device(up);
  cuda::silu_mul(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_difference(on_host(device_gate), expected), 1e-6);

  std::vector<float> sum = expected;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += up[i];
  cuda::add_in_place(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_difference(on_host(device_gate), sum), 1e-6);
}

TEST_F(CudaKernels, GeluTanhMulMatchesTheCpu) {
  const std::vector<float> gate = random_normal(10000, 20, 4.0f), up = random_normal(10000, 21);
  std::vector<float> expected(gate.size());
  gelu_tanh_mul(gate, up, expected);
  DeviceBuffer device_gate = on_device(gate), device_up = on_device(up);
  cuda::gelu_tanh_mul(device_gate.data(), device_up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LT(relative_difference(on_host(device_gate), expected), 1e-6);
}

TEST_F(CudaKernels, GemmAndBiasMatchADoubleReference) {
  const int64_t tokens = 33, rows = 70, columns = 129;
  const std::vector<float> x = random_normal(tokens * columns, 20), weight = random_normal(rows * columns, 21);
  const std::vector<float> bias = random_normal(rows, 22);
  std::vector<float> expected(tokens * rows);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double sum = bias[r];
      for (int64_t c = 0; c < columns; ++c) sum += static_cast<double>(x[t * columns + c]) * weight[r * columns + c];
      expected[t * rows + r] = static_cast<float>(sum);
    }
  }
  DeviceBuffer device_x = on_device(x), device_w = on_device(weight), device_bias = on_device(bias);
  DeviceBuffer y(expected.size());
  cuda::Gemm gemm;
  gemm.rows_times_weight(device_x.data(), tokens, device_w.data(), rows, columns, y.data());
  cuda::add_row_bias(y.data(), device_bias.data(), tokens, rows);
  EXPECT_LT(relative_difference(on_host(y), expected), 1e-5);
}

TEST_F(CudaKernels, ErrorsAreOneLineHlwqErrors) {
  DeviceBuffer small(4);
  std::vector<float> host(8);
  EXPECT_NE(error_message([&] { small.upload(host.data(), host.size()); }).find("upload of 8 floats"),
            std::string::npos);
  // Attention over more positions than shared memory holds.
  EXPECT_NE(error_message([&] {
              cuda::causal_attention(small.data(), small.data(), small.data(), 1, 1 << 20, 1, 1, 64, 0.125, small.data());
            }).find("shared memory"),
            std::string::npos);
}

#endif  // HLWQ_HAVE_CUDA

}  // namespace
}  // namespace hlwq
