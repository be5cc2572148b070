// One table of ops x backends: every op of the Backend interface, on every backend this machine has
// (the CPU always, CUDA where a GPU is visible), against a plain reference in double on fresh random
// inputs, with the error bound each row states. Rows of a pass sit at scattered places of several
// sequences, as a batched decode has them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/attention_head.h"
#include "ops/backend.h"
#include "ops/causal_conv1d.h"
#include "ops/delta_net_gates.h"
#include "ops/gated_delta_rule.h"
#include "ops/kv_cache.h"
#include "ops/linear_weight_builders.h"
#include "ops/rotary_embedding.h"
#include "quant/hlwq_codec.h"
#include "test_util.h"

namespace hlwq {
namespace {

// max |a - b| / max |b|.
double relative_difference(std::span<const float> a, std::span<const float> b) {
  double largest_difference = 0, largest = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (std::isnan(a[i])) return INFINITY;
    largest_difference = std::max(largest_difference, std::fabs(static_cast<double>(a[i]) - b[i]));
    largest = std::max(largest, std::fabs(static_cast<double>(b[i])));
  }
  return largest > 0 ? largest_difference / largest : largest_difference;
}

std::vector<BackendKind> backends_here() {
  std::vector<BackendKind> kinds = {BackendKind::cpu};
  if (cuda_backend_available()) kinds.push_back(BackendKind::cuda);
  return kinds;
}

class BackendOps : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override { backend_ = make_backend(GetParam(), 2); }

  Buffer upload(const std::vector<float>& values) { return backend_->upload(values); }
  std::vector<float> download(const Buffer& buffer) {
    std::vector<float> values(static_cast<size_t>(buffer.size()));
    backend_->download(buffer.floats(), values);
    return values;
  }
  // A pass of these places (tokens: row index mod 7).
  void set_pass(const std::vector<TokenPlace>& places) {
    std::vector<int32_t> tokens;
    for (size_t i = 0; i < places.size(); ++i) tokens.push_back(static_cast<int32_t>(i % 7));
    if (!inputs_) inputs_ = backend_->make_pass_inputs(4096);
    backend_->set_pass(*inputs_, tokens, places);
  }
  void report(const char* op, double error, double bound) {
    std::printf("%-28s %-5s relative error %.2e (bound %.0e)\n", op, backend_kind_name(GetParam()), error, bound);
    EXPECT_LT(error, bound) << op;
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<BackendPassInputs> inputs_;
};

TEST_P(BackendOps, ElementwiseAndNorms) {
  const int64_t rows = 5, width = 320;
  const std::vector<float> x = random_normal(rows * width, 1, 3.0f), weight = random_normal(width, 2);
  const std::vector<float> gate = random_normal(rows * width, 3, 4.0f), up = random_normal(rows * width, 4);
  const std::vector<float> bias = random_normal(width, 5);
  // rms_norm
  std::vector<float> expected(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (int64_t i = 0; i < width; ++i) squares += static_cast<double>(x[r * width + i]) * x[r * width + i];
    const double scale = 1.0 / std::sqrt(squares / width + 1e-5);
    for (int64_t i = 0; i < width; ++i) expected[r * width + i] = static_cast<float>(weight[i] * x[r * width + i] * scale);
  }
  Buffer device_x = upload(x), device_weight = upload(weight), out = backend_->allocate(rows * width);
  backend_->rms_norm(device_x.floats(), device_weight.floats(), 1e-5, out.floats());
  report("rms_norm", relative_difference(download(out), expected), 1e-6);
  // add_bias and add
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = x[i] + bias[i % width];
  Buffer device_bias = upload(bias);
  backend_->add_bias(device_x.floats(), device_bias.floats());
  report("add_bias", relative_difference(download(device_x), expected), 1e-7);
  Buffer device_up = upload(up);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] += up[i];
  backend_->add(device_x.floats(), device_up.floats());
  report("add", relative_difference(download(device_x), expected), 1e-7);
  // silu_mul and gelu_tanh_mul
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = static_cast<float>(gate[i] / (1 + std::exp(-static_cast<double>(gate[i]))) * up[i]);
  Buffer device_gate = upload(gate);
  backend_->silu_mul(device_gate.floats(), device_up.floats());
  report("silu_mul", relative_difference(download(device_gate), expected), 1e-6);
  for (size_t i = 0; i < expected.size(); ++i) {
    const double g = gate[i];
    expected[i] = static_cast<float>(0.5 * g * (1 + std::tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * up[i]);
  }
  device_gate = upload(gate);
  backend_->gelu_tanh_mul(device_gate.floats(), device_up.floats());
  report("gelu_tanh_mul", relative_difference(download(device_gate), expected), 1e-6);
}

TEST_P(BackendOps, AddAndRmsNormEqualsAddThenRmsNorm) {
  const int64_t rows = 3, width = 4096 + 96;  // wider than a CUDA block's 1024 threads, not a multiple
  const std::vector<float> x = random_normal(rows * width, 11, 2.0f), addend = random_normal(rows * width, 12);
  const std::vector<float> weight = random_normal(width, 13);
  std::vector<float> sum(x.size()), expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + addend[i];
  for (int64_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (int64_t i = 0; i < width; ++i) squares += static_cast<double>(sum[r * width + i]) * sum[r * width + i];
    const double scale = 1.0 / std::sqrt(squares / width + 1e-6);
    for (int64_t i = 0; i < width; ++i) expected[r * width + i] = static_cast<float>(weight[i] * sum[r * width + i] * scale);
  }
  Buffer fused_target = upload(x), device_addend = upload(addend), device_weight = upload(weight);
  Buffer fused_out = backend_->allocate(rows * width);
  backend_->add_and_rms_norm(fused_target.floats(), device_addend.floats(), device_weight.floats(), 1e-6,
                             fused_out.floats());
  report("add_and_rms_norm: sum", relative_difference(download(fused_target), sum), 1e-7);
  report("add_and_rms_norm: norm", relative_difference(download(fused_out), expected), 1e-6);
  // The fused op gives the unfused pair's numbers bit for bit (a model's logits must not move).
  Buffer target = upload(x), out = backend_->allocate(rows * width);
  backend_->add(target.floats(), device_addend.floats());
  backend_->rms_norm(target.floats(), device_weight.floats(), 1e-6, out.floats());
  EXPECT_EQ(download(fused_out), download(out));
  // Written over its own input, as rms_norm may be.
  Buffer in_place = upload(x);
  backend_->add_and_rms_norm(in_place.floats(), device_addend.floats(), device_weight.floats(), 1e-6,
                             in_place.floats());
  EXPECT_EQ(download(in_place), download(out));
}

// RoPE by its definition, in double: each head's first rotary_dim values rotate in pairs (i,
// i + rotary_dim / 2) by position x frequency i; the rest of the head passes through.
std::vector<float> rope_reference(const std::vector<float>& x, const std::vector<TokenPlace>& places, int64_t heads,
                                  int64_t head_dim, int64_t rotary_dim, const std::vector<double>& frequencies) {
  std::vector<float> expected = x;
  const int64_t half = rotary_dim / 2;
  for (size_t r = 0; r < places.size(); ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t start = (static_cast<int64_t>(r) * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = places[r].position * frequencies[i];
        const double a = x[start + i], b = x[start + i + half];
        expected[start + i] = static_cast<float>(a * std::cos(angle) - b * std::sin(angle));
        expected[start + i + half] = static_cast<float>(b * std::cos(angle) + a * std::sin(angle));
      }
    }
  }
  return expected;
}

TEST_P(BackendOps, RopeAtScatteredPlaces) {
  const int64_t heads = 4, head_dim = 64;
  const std::vector<TokenPlace> places = {{0, 3}, {1, 0}, {2, 40}, {0, 4}, {1, 17}};
  const auto rows = static_cast<int64_t>(places.size());
  const std::vector<double> frequencies = rope_inverse_frequencies(head_dim, 500000.0, RopeScaling{});
  std::vector<float> x = random_normal(rows * heads * head_dim, 6);
  Buffer device_x = upload(x);
  auto rope = backend_->make_rope(frequencies, 64);
  set_pass(places);
  backend_->prepare_rope(*rope);
  backend_->apply_rope(device_x.floats(), heads, head_dim, *rope);
  const std::vector<float> expected = rope_reference(x, places, heads, head_dim, head_dim, frequencies);
  report("apply_rope", relative_difference(download(device_x), expected), 1e-6);
}

// Keys and values stored over two passes (a prefill of each sequence, then a batched step) and read
// by attention, against attention_head_reference over the same rounded rows. In a context of 3000,
// sequence 1 first gets 2600 positions: its step then reads a long context with few rows (CUDA
// splits it across blocks and combines the shares).
TEST_P(BackendOps, KvCacheAndAttention) {
  const int64_t heads = 6, kv_heads = 2, head_dim = 64, layers = 2, layer = 1;
  const int64_t kv_width = kv_heads * head_dim, q_width = heads * head_dim;
  for (const int64_t context : {int64_t{40}, int64_t{3000}})
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    auto cache = backend_->make_kv_cache(KvCacheShape{layers, kv_heads, head_dim, context, 3, dtype});
    // The same rows kept on the host in a KvCache per sequence (the reference rounds alike).
    std::vector<KvCache> host;
    for (int s = 0; s < 3; ++s) host.emplace_back(layers, kv_heads, head_dim, context, dtype);
    const auto run = [&](const std::vector<TokenPlace>& places, uint32_t seed, bool verify = true) {
      const auto rows = static_cast<int64_t>(places.size());
      const std::vector<float> keys = random_normal(rows * kv_width, seed, 2.0f);
      const std::vector<float> values = random_normal(rows * kv_width, seed + 1);
      const std::vector<float> queries = random_normal(rows * q_width, seed + 2, 2.0f);
      Buffer device_keys = upload(keys), device_values = upload(values), device_queries = upload(queries);
      Buffer out = backend_->allocate(rows * q_width);
      set_pass(places);
      backend_->store_kv(*cache, layer, device_keys.floats(), device_values.floats());
      backend_->attention(device_queries.floats(), *cache, layer, AttentionShape{heads, kv_heads, head_dim, 0},
                          out.floats());
      std::vector<float> expected(queries.size());
      for (int64_t r = 0; r < rows; ++r) {
        host[places[r].sequence].store(layer, places[r].position,
                                       std::span<const float>(keys).subspan(r * kv_width, kv_width),
                                       std::span<const float>(values).subspan(r * kv_width, kv_width));
      }
      if (!verify) return 0.0;
      for (int64_t r = 0; r < rows; ++r) {
        const KvCache& sequence = host[places[r].sequence];
        for (int64_t h = 0; h < heads; ++h) {
          AttentionHead head;
          head.query = queries.data() + r * q_width + h * head_dim;
          const size_t offset = static_cast<size_t>((h / (heads / kv_heads)) * head_dim) * dtype_size(dtype);
          head.keys = sequence.layer_keys(layer).data() + offset;
          head.values = sequence.layer_values(layer).data() + offset;
          head.dtype = dtype;
          head.row_stride = static_cast<size_t>(kv_width);
          head.positions = static_cast<size_t>(places[r].position + 1);
          head.head_dim = static_cast<size_t>(head_dim);
          head.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
          attention_head_reference(head, std::span<float>(expected).subspan(r * q_width + h * head_dim, head_dim));
        }
      }
      return relative_difference(download(out), expected);
    };
    // A prefill of sequence 2 (12 positions), of sequence 0 (5), then one step of each of 0, 2 and 1.
    std::vector<TokenPlace> prefill;
    for (int p = 0; p < 12; ++p) prefill.push_back({2, p});
    const double first = run(prefill, 10);
    prefill.clear();
    for (int p = 0; p < 5; ++p) prefill.push_back({0, p});
    const double second = run(prefill, 20);
    const int32_t long_prefix = context > 2600 ? 2600 : 0;
    if (long_prefix > 0) {
      prefill.clear();
      for (int p = 0; p < long_prefix; ++p) prefill.push_back({1, p});
      run(prefill, 25, false);
    }
    const double step = run({{0, 5}, {2, 12}, {1, long_prefix}}, 30);
    const std::string name = std::string("store_kv+attention ") + std::string(dtype_name(dtype)) + " ctx " +
                             std::to_string(context);
    report(name.c_str(), std::max({first, second, step}), 1e-5);
  }
}

struct LinearCase {
  const char* name;
  std::function<LinearWeight(const std::vector<float>&, int64_t, int64_t, ThreadPool&)> make;
  // CUDA multiplies these at batches 2..16 with fp16 x on tensor cores (GEMV version 4): relative
  // error about 3e-4 (tests/ops/cuda/device_linear_test.cc), so 2e-3 there instead of 1e-5.
  bool fp16_small_batches = false;
};

std::vector<LinearCase> linear_cases() {
  return {
      {"dense bf16", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool&) {
         return make_dense_linear_weight(DType::BF16, w, rows, columns);
       }},
      {"hlwq q4 block 64", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool& pool) {
         HlwqParams params;
         params.bits = 4;
         params.block = 64;
         params.gain = BlockGain::least_squares;
         return make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), w, rows, pool);
       }},
      {"hlwq q4 block 128 signs", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool& pool) {
         HlwqParams params;
         params.bits = 4;
         params.block = 128;
         params.sign_seed = 11;
         return make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), w, rows, pool);
       }, true},
      {"hlwq q5 block 128 signs", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool& pool) {
         HlwqParams params;
         params.bits = 5;
         params.block = 128;
         params.sign_seed = 7;
         return make_hlwq_linear_weight(std::make_shared<const HlwqCodec>(params, columns), w, rows, pool);
       }},
      {"mlx 4-bit g64", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool&) {
         return make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, w, rows, columns);
       }, true},
      {"ct int4 g128", [](const std::vector<float>& w, int64_t rows, int64_t columns, ThreadPool&) {
         return make_int4_linear_weight(Int4Params{128}, DType::BF16, w, rows, columns);
       }, true},
  };
}

// linear, linear_group and embed for each format, batch 1 (decode) and 7 (a small prefill), against
// linear_forward_reference and dequantize_linear_row.
TEST_P(BackendOps, LinearsAndEmbedding) {
  ThreadPool pool(2);
  const int64_t rows = 96, columns = 256;
  for (const LinearCase& test_case : linear_cases()) {
    const LinearWeight weight = test_case.make(random_normal(rows * columns, 40, 0.02f), rows, columns, pool);
    const LinearWeight other = test_case.make(random_normal(rows * columns, 41, 0.02f), rows, columns, pool);
    auto device_weight = backend_->upload_linear(weight);
    auto device_other = backend_->upload_linear(other);
    for (int64_t batch : {1, 7}) {
      const std::vector<float> x = random_normal(batch * columns, 42 + static_cast<uint32_t>(batch));
      std::vector<float> expected(batch * rows), expected_other(batch * rows);
      linear_forward_reference(weight, x, batch, expected);
      linear_forward_reference(other, x, batch, expected_other);
      Buffer device_x = upload(x), y = backend_->allocate(batch * rows), y_other = backend_->allocate(batch * rows);
      backend_->linear(*device_weight, device_x.floats(), batch, y.floats());
      const std::string name = std::string(test_case.name) + " batch " + std::to_string(batch);
      const double bound =
          test_case.fp16_small_batches && GetParam() == BackendKind::cuda && batch >= 2 ? 2e-3 : 1e-5;
      report(("linear " + name).c_str(), relative_difference(download(y), expected), bound);
      const BackendLinear* group[] = {device_weight.get(), device_other.get()};
      const Floats outputs[] = {y.floats(), y_other.floats()};
      backend_->linear_group(group, device_x.floats(), batch, outputs);
      report(("linear_group " + name).c_str(),
             std::max(relative_difference(download(y), expected), relative_difference(download(y_other), expected_other)),
             bound);
    }
    // embed: rows 0, 95, 3, 3 of the table times 0.5.
    std::vector<TokenPlace> places = {{0, 0}, {0, 1}, {0, 2}, {0, 3}};
    const std::vector<int32_t> tokens = {0, 95, 3, 3};
    if (!inputs_) inputs_ = backend_->make_pass_inputs(64);
    backend_->set_pass(*inputs_, tokens, places);
    Buffer out = backend_->allocate(4 * columns);
    backend_->embed(*device_weight, 0.5f, out.floats());
    std::vector<float> expected(4 * columns);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::span<float> row = std::span<float>(expected).subspan(i * columns, columns);
      dequantize_linear_row(weight, tokens[i], row, AffineArithmetic::dequantize);
      for (float& value : row) value *= 0.5f;
    }
    report((std::string("embed ") + test_case.name).c_str(), relative_difference(download(out), expected), 1e-6);
  }
}

// Qwen3.5's gated attention pieces: partial RoPE (a quarter of each head), the query/gate split
// and the sigmoid gate, and the delta-net's gated RMSNorm.
TEST_P(BackendOps, GatedAttentionAndGatedNorm) {
  const int64_t heads = 3, head_dim = 64, rotary_dim = 16;
  const std::vector<TokenPlace> places = {{0, 5}, {1, 0}, {2, 33}};
  const auto rows = static_cast<int64_t>(places.size());
  const std::vector<double> frequencies = rope_inverse_frequencies(rotary_dim, 1e7, RopeScaling{});
  const std::vector<float> x = random_normal(rows * heads * head_dim, 21);
  Buffer device_x = upload(x);
  auto rope = backend_->make_rope(frequencies, 64);
  set_pass(places);
  backend_->prepare_rope(*rope);
  backend_->apply_rope(device_x.floats(), heads, head_dim, *rope);
  const std::vector<float> expected = rope_reference(x, places, heads, head_dim, rotary_dim, frequencies);
  report("apply_rope partial 16/64", relative_difference(download(device_x), expected), 1e-6);

  const std::vector<float> projected = random_normal(rows * heads * 2 * head_dim, 22, 2.0f);
  Buffer device_projected = upload(projected), query = backend_->allocate(rows * heads * head_dim),
         gate = backend_->allocate(rows * heads * head_dim);
  backend_->split_query_and_gate(device_projected.floats(), heads, head_dim, query.floats(), gate.floats());
  std::vector<float> expected_query, expected_gate;
  for (int64_t rh = 0; rh < rows * heads; ++rh) {
    const auto head = projected.begin() + rh * 2 * head_dim;
    expected_query.insert(expected_query.end(), head, head + head_dim);
    expected_gate.insert(expected_gate.end(), head + head_dim, head + 2 * head_dim);
  }
  report("split_query_and_gate", std::max(relative_difference(download(query), expected_query),
                                          relative_difference(download(gate), expected_gate)), 1e-7);
  backend_->sigmoid_gate(query.floats(), gate.floats());
  for (size_t i = 0; i < expected_query.size(); ++i) {
    expected_query[i] = static_cast<float>(expected_query[i] / (1 + std::exp(-static_cast<double>(expected_gate[i]))));
  }
  report("sigmoid_gate", relative_difference(download(query), expected_query), 1e-6);

  const int64_t width = 40;
  const std::vector<float> values = random_normal(6 * width, 23, 3.0f), z = random_normal(6 * width, 24, 2.0f);
  const std::vector<float> weight = random_normal(width, 25);
  std::vector<float> expected_norm(values.size());
  for (int64_t r = 0; r < 6; ++r) {
    double squares = 0;
    for (int64_t i = 0; i < width; ++i) squares += static_cast<double>(values[r * width + i]) * values[r * width + i];
    const double inverse_rms = 1.0 / std::sqrt(squares / width + 1e-6);
    for (int64_t i = 0; i < width; ++i) {
      const double g = z[r * width + i];
      expected_norm[r * width + i] =
          static_cast<float>(values[r * width + i] * inverse_rms * weight[i] * g / (1 + std::exp(-g)));
    }
  }
  Buffer device_values = upload(values), device_z = upload(z), device_weight = upload(weight);
  backend_->gated_rms_norm(device_values.floats(), device_z.floats(), device_weight.floats(), 1e-6,
                           device_values.floats());
  report("gated_rms_norm", relative_difference(download(device_values), expected_norm), 1e-6);
}

// The gated delta-net's conv and rule over four passes: two prefills of two sequences, a batched
// step of both, then a restart of one at position 0; against the reference conv and rule run over
// each sequence's whole history at once.
TEST_P(BackendOps, DeltaNetStateAcrossPasses) {
  const DeltaNetShape net{2, 4, 32, 40, 4};  // 40 value columns: not a multiple of a warp
  const int64_t channels = net.conv_channels(), layer = 1;
  auto state = backend_->make_delta_net_state(DeltaNetStateShape{2, 2, net});
  const std::vector<float> conv_weight = random_normal(channels * net.conv_kernel, 30, 0.5f);
  const std::vector<float> a_log = random_normal(net.value_heads, 31, 0.5f), dt_bias = random_normal(net.value_heads, 32);
  Buffer device_conv_weight = upload(conv_weight), device_a_log = upload(a_log), device_dt_bias = upload(dt_bias);
  const std::vector<std::vector<TokenPlace>> passes = {
      {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}}, {{1, 0}, {1, 1}, {1, 2}}, {{1, 3}, {0, 6}}, {{1, 0}, {1, 1}}};
  // Each sequence's history since its last restart: inputs and the backend's outputs per row.
  struct History {
    std::vector<float> mixed, a, b, convolved, out;
  };
  std::vector<History> history(2);
  double conv_error = 0, rule_error = 0;
  uint32_t seed = 40;
  const auto check_sequence = [&](const History& h) {
    const auto tokens = static_cast<int64_t>(h.a.size()) / net.value_heads;
    std::vector<float> conv_state(static_cast<size_t>(net.conv_state_floats()), 0.0f), convolved(h.mixed.size());
    causal_conv1d_silu_reference(h.mixed, channels, conv_weight, net.conv_kernel, conv_state, convolved);
    conv_error = std::max(conv_error, relative_difference(h.convolved, convolved));
    std::vector<float> query, key, value;
    for (int64_t t = 0; t < tokens; ++t) {
      const float* row = convolved.data() + t * channels;
      for (int64_t part = 0; part < 2; ++part) {
        for (int64_t head = 0; head < net.key_heads; ++head) {
          const float* x = row + part * net.key_dim() + head * net.key_head_dim;
          double squares = 0;
          for (int64_t i = 0; i < net.key_head_dim; ++i) squares += static_cast<double>(x[i]) * x[i];
          const double factor = (part == 0 ? 1.0 / std::sqrt(static_cast<double>(net.key_head_dim)) : 1.0) /
                                std::sqrt(squares + 1e-6);
          for (int64_t i = 0; i < net.key_head_dim; ++i) (part == 0 ? query : key).push_back(static_cast<float>(x[i] * factor));
        }
      }
      value.insert(value.end(), row + 2 * net.key_dim(), row + channels);
    }
    std::vector<float> decay(h.a.size()), beta(h.a.size());
    delta_net_gates(h.a, h.b, a_log, dt_bias, decay, beta);
    std::vector<float> rule_state(static_cast<size_t>(net.rule_state_floats()), 0.0f), out(value.size());
    gated_delta_rule_reference(GatedDeltaShape{net.key_heads, net.value_heads, net.key_head_dim, net.value_head_dim},
                               GatedDeltaInputs{query, key, value, decay, beta}, rule_state, out);
    rule_error = std::max(rule_error, relative_difference(h.out, out));
  };
  for (const std::vector<TokenPlace>& places : passes) {
    const auto rows = static_cast<int64_t>(places.size());
    const std::vector<float> mixed = random_normal(rows * channels, seed++, 1.5f);
    const std::vector<float> a = random_normal(rows * net.value_heads, seed++), b = random_normal(rows * net.value_heads, seed++);
    Buffer device_mixed = upload(mixed), device_a = upload(a), device_b = upload(b);
    Buffer convolved = backend_->allocate(rows * channels), out = backend_->allocate(rows * net.value_dim());
    set_pass(places);
    backend_->delta_net_conv(*state, layer, device_mixed.floats(), device_conv_weight.floats(), convolved.floats());
    backend_->delta_net_rule(*state, layer, convolved.floats(), device_a.floats(), device_b.floats(),
                             device_a_log.floats(), device_dt_bias.floats(), out.floats());
    const std::vector<float> convolved_host = download(convolved), out_host = download(out);
    for (int64_t r = 0; r < rows; ++r) {
      History& h = history[places[r].sequence];
      if (places[r].position == 0) {
        if (!h.a.empty()) check_sequence(h);
        h = History{};
      }
      const auto row = [&](const std::vector<float>& from, int64_t width) {
        return std::span<const float>(from).subspan(static_cast<size_t>(r * width), static_cast<size_t>(width));
      };
      const auto append = [](std::vector<float>& to, std::span<const float> values) {
        to.insert(to.end(), values.begin(), values.end());
      };
      append(h.mixed, row(mixed, channels));
      append(h.a, row(a, net.value_heads));
      append(h.b, row(b, net.value_heads));
      append(h.convolved, row(convolved_host, channels));
      append(h.out, row(out_host, net.value_dim()));
    }
  }
  for (const History& h : history) check_sequence(h);
  report("delta_net_conv", conv_error, 1e-6);
  report("delta_net_rule", rule_error, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(EveryBackendHere, BackendOps, ::testing::ValuesIn(backends_here()),
                         [](const ::testing::TestParamInfo<BackendKind>& info) {
                           return std::string(backend_kind_name(info.param));
                         });

TEST(BackendKinds, NamesParseAndBadOnesAreErrors) {
  EXPECT_EQ(parse_backend_kind("cpu"), BackendKind::cpu);
  EXPECT_EQ(parse_backend_kind("cuda"), BackendKind::cuda);
  EXPECT_NE(error_message([] { parse_backend_kind("metal"); }).find("unknown backend 'metal' (cpu, cuda)"),
            std::string::npos);
}

}  // namespace
}  // namespace hlwq
