#include "engine/gpu_forward.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "engine/rotary_embedding.h"

#ifdef HLWQ_HAVE_CUDA
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_info.h"
#include "ops/cuda/gemm.h"
#include "ops/cuda/transformer_kernels.h"
#endif

namespace hlwq {

#ifdef HLWQ_HAVE_CUDA

namespace {

using cuda::DeviceBuffer;

DeviceBuffer upload_floats(std::span<const float> values) {
  DeviceBuffer buffer(values.size());
  buffer.upload(values.data(), values.size());
  return buffer;
}

// The whole matrix as F32, row by row through the formats' own dequantizers (in parallel).
DeviceBuffer upload_linear(const LinearWeight& weight, ThreadPool& pool) {
  std::vector<float> rows(static_cast<size_t>(weight.rows * weight.columns));
  pool.parallel_for(static_cast<size_t>(weight.rows), [&](size_t begin, size_t end) {
    for (size_t row = begin; row < end; ++row) {
      dequantize_linear_row(weight, static_cast<int64_t>(row),
                            std::span<float>(rows).subspan(row * weight.columns, weight.columns),
                            AffineArithmetic::matmul);
    }
  });
  return upload_floats(rows);
}

struct GpuLinear {
  DeviceBuffer weight, bias;
  int64_t rows = 0, columns = 0;
};

GpuLinear upload_layer_linear(const LinearWeight& weight, std::span<const float> bias, ThreadPool& pool) {
  return GpuLinear{upload_linear(weight, pool), upload_floats(bias), weight.rows, weight.columns};
}

struct GpuLayer {
  DeviceBuffer input_norm, post_attention_norm, pre_feedforward_norm, post_feedforward_norm, q_norm, k_norm;
  bool local_rope = false;  // gemma3 sliding-window layer
  GpuLinear q, k, v, o, gate, up, down;
};

cuda::StorageRounding rounding_for(DType dtype) {
  switch (dtype) {
    case DType::F32: return cuda::StorageRounding::none;
    case DType::F16: return cuda::StorageRounding::f16;
    case DType::BF16: return cuda::StorageRounding::bf16;
    default: fail("the GPU forward keeps keys and values as F32, F16 or BF16, not ", dtype_name(dtype));
  }
}

}  // namespace

struct GpuForward::State {
  State(const Model& model, int64_t context_length, cuda::StorageRounding kv_rounding, ThreadPool& pool)
      : model(model), context_length(context_length), kv_rounding(kv_rounding), pool(pool) {}

  const Model& model;
  int64_t context_length;
  cuda::StorageRounding kv_rounding;
  ThreadPool& pool;
  cuda::Gemm gemm;
  std::vector<GpuLayer> layers;
  DeviceBuffer final_norm;
  GpuLinear lm_head;
  DeviceBuffer cosines, sines;              // global (or only) rope
  DeviceBuffer local_cosines, local_sines;  // gemma3's sliding-window layers
  // Activations for context_length tokens.
  DeviceBuffer hidden, normed, queries, keys, values, attention, projected, gate, up, logits;
  cuda::PinnedHostBuffer staged_logits;

  void linear(const GpuLinear& layer, const DeviceBuffer& x, int64_t tokens, DeviceBuffer& y) {
    gemm.rows_times_weight(x.data(), tokens, layer.weight.data(), layer.rows, layer.columns, y.data());
    if (layer.bias.size() != 0) cuda::add_row_bias(y.data(), layer.bias.data(), tokens, layer.rows);
  }
};

bool gpu_forward_available() { return cuda::device_count() > 0; }

GpuForward::GpuForward(const Model& model, int64_t context_length, DType kv_cache_dtype, ThreadPool& pool) {
  check(gpu_forward_available(), "--backend cuda: no CUDA GPU is visible to this process");
  const ModelConfig& config = model.config();
  check(context_length > 0, "GPU forward context length ", context_length);
  state_ = std::make_unique<State>(model, context_length, rounding_for(kv_cache_dtype), pool);
  State& s = *state_;
  for (size_t index = 0; index < model.layers().size(); ++index) {
    const LayerWeights& layer = model.layers()[index];
    GpuLayer gpu;
    gpu.input_norm = upload_floats(layer.input_norm);
    gpu.post_attention_norm = upload_floats(layer.post_attention_norm);
    gpu.pre_feedforward_norm = upload_floats(layer.pre_feedforward_norm);
    gpu.post_feedforward_norm = upload_floats(layer.post_feedforward_norm);
    gpu.local_rope = !config.sliding_layers.empty() && config.sliding_layers[index];
    gpu.q_norm = upload_floats(layer.q_norm);
    gpu.k_norm = upload_floats(layer.k_norm);
    gpu.q = upload_layer_linear(layer.q, layer.q_bias, pool);
    gpu.k = upload_layer_linear(layer.k, layer.k_bias, pool);
    gpu.v = upload_layer_linear(layer.v, layer.v_bias, pool);
    gpu.o = upload_layer_linear(layer.o, layer.o_bias, pool);
    gpu.gate = upload_layer_linear(layer.gate, layer.gate_bias, pool);
    gpu.up = upload_layer_linear(layer.up, layer.up_bias, pool);
    gpu.down = upload_layer_linear(layer.down, layer.down_bias, pool);
    s.layers.push_back(std::move(gpu));
  }
  s.final_norm = upload_floats(model.final_norm());
  s.lm_head = upload_layer_linear(model.lm_head(), {}, pool);

  // cos/sin of every position, in double as apply_rope computes them, rounded to float.
  const auto upload_rope = [&](double theta, const RopeScaling& scaling, DeviceBuffer& cosine_table,
                               DeviceBuffer& sine_table) {
    const std::vector<double> frequencies = rope_inverse_frequencies(config.head_dim, theta, scaling);
    const size_t half = frequencies.size();
    std::vector<float> cosines(context_length * half), sines(context_length * half);
    for (int64_t position = 0; position < context_length; ++position) {
      for (size_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(position) * frequencies[i];
        cosines[position * half + i] = static_cast<float>(std::cos(angle));
        sines[position * half + i] = static_cast<float>(std::sin(angle));
      }
    }
    cosine_table = upload_floats(cosines);
    sine_table = upload_floats(sines);
  };
  upload_rope(config.rope_theta, config.rope_scaling, s.cosines, s.sines);
  if (!config.sliding_layers.empty()) {
    upload_rope(config.local_rope_theta, RopeScaling{}, s.local_cosines, s.local_sines);
  }

  const auto tokens = static_cast<size_t>(context_length);
  s.hidden = DeviceBuffer(tokens * config.hidden_size);
  s.normed = DeviceBuffer(tokens * config.hidden_size);
  s.queries = DeviceBuffer(tokens * config.heads * config.head_dim);
  s.keys = DeviceBuffer(tokens * config.kv_heads * config.head_dim);
  s.values = DeviceBuffer(tokens * config.kv_heads * config.head_dim);
  s.attention = DeviceBuffer(tokens * config.heads * config.head_dim);
  s.projected = DeviceBuffer(tokens * config.hidden_size);
  s.gate = DeviceBuffer(tokens * config.intermediate_size);
  s.up = DeviceBuffer(tokens * config.intermediate_size);
  s.logits = DeviceBuffer(tokens * config.vocab_size);
  s.staged_logits = cuda::PinnedHostBuffer(tokens * config.vocab_size);
}

GpuForward::~GpuForward() = default;

uint64_t GpuForward::device_bytes() const {
  const State& s = *state_;
  uint64_t floats = s.final_norm.size() + s.lm_head.weight.size() + s.cosines.size() + s.sines.size() +
                    s.local_cosines.size() + s.local_sines.size();
  for (const DeviceBuffer* buffer : {&s.hidden, &s.normed, &s.queries, &s.keys, &s.values, &s.attention,
                                     &s.projected, &s.gate, &s.up, &s.logits}) {
    floats += buffer->size();
  }
  for (const GpuLayer& layer : s.layers) {
    floats += layer.input_norm.size() + layer.post_attention_norm.size() + layer.pre_feedforward_norm.size() +
              layer.post_feedforward_norm.size() + layer.q_norm.size() + layer.k_norm.size();
    for (const GpuLinear* linear : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down}) {
      floats += linear->weight.size() + linear->bias.size();
    }
  }
  return floats * sizeof(float);
}

std::vector<float> GpuForward::window_logits(std::span<const int32_t> tokens, LogitsFrom which) {
  std::vector<float> logits;
  window_logits(tokens, which, logits);
  return logits;
}

void GpuForward::window_logits(std::span<const int32_t> tokens, LogitsFrom which, std::vector<float>& logits) {
  State& s = *state_;
  const ModelConfig& config = s.model.config();
  const auto count = static_cast<int64_t>(tokens.size());
  check(count > 0, "forward needs at least one token");
  check(count <= s.context_length, "a pass of ", count, " tokens exceeds the GPU context of ", s.context_length);
  check(which.first_token >= 0 && which.first_token < count, "logits from token ", which.first_token, " of a pass of ",
        count, " tokens");
  const int64_t hidden = config.hidden_size;
  const int64_t head_dim = config.head_dim;
  std::vector<float> embedded(static_cast<size_t>(count * hidden));
  for (int64_t token = 0; token < count; ++token) {
    s.model.embed(tokens[token], std::span<float>(embedded).subspan(token * hidden, hidden));
  }
  s.hidden.upload(embedded.data(), embedded.size());
  for (const GpuLayer& layer : s.layers) {
    cuda::rms_norm_rows(s.hidden.data(), layer.input_norm.data(), count, hidden, config.rms_norm_eps, s.normed.data());
    s.linear(layer.q, s.normed, count, s.queries);
    s.linear(layer.k, s.normed, count, s.keys);
    s.linear(layer.v, s.normed, count, s.values);
    if (config.qk_norm) {
      cuda::rms_norm_rows(s.queries.data(), layer.q_norm.data(), count * config.heads, head_dim, config.rms_norm_eps,
                          s.queries.data());
      cuda::rms_norm_rows(s.keys.data(), layer.k_norm.data(), count * config.kv_heads, head_dim, config.rms_norm_eps,
                          s.keys.data());
    }
    const float* cosines = layer.local_rope ? s.local_cosines.data() : s.cosines.data();
    const float* sines = layer.local_rope ? s.local_sines.data() : s.sines.data();
    cuda::apply_rope_rows(s.queries.data(), count, config.heads, head_dim, 0, cosines, sines);
    cuda::apply_rope_rows(s.keys.data(), count, config.kv_heads, head_dim, 0, cosines, sines);
    cuda::round_to_storage(s.keys.data(), count * config.kv_heads * head_dim, s.kv_rounding);
    cuda::round_to_storage(s.values.data(), count * config.kv_heads * head_dim, s.kv_rounding);
    cuda::causal_attention(s.queries.data(), s.keys.data(), s.values.data(), count, 0, config.heads, config.kv_heads,
                           head_dim, config.attention_scale, s.attention.data());
    s.linear(layer.o, s.attention, count, s.projected);
    if (config.sandwich_norms) {
      cuda::rms_norm_rows(s.projected.data(), layer.post_attention_norm.data(), count, hidden, config.rms_norm_eps,
                          s.projected.data());
    }
    cuda::add_in_place(s.hidden.data(), s.projected.data(), count * hidden);

    const DeviceBuffer& mlp_norm = config.sandwich_norms ? layer.pre_feedforward_norm : layer.post_attention_norm;
    cuda::rms_norm_rows(s.hidden.data(), mlp_norm.data(), count, hidden, config.rms_norm_eps, s.normed.data());
    s.linear(layer.gate, s.normed, count, s.gate);
    s.linear(layer.up, s.normed, count, s.up);
    switch (config.activation) {
      case Activation::silu: cuda::silu_mul(s.gate.data(), s.up.data(), count * config.intermediate_size); break;
      case Activation::gelu_tanh:
        cuda::gelu_tanh_mul(s.gate.data(), s.up.data(), count * config.intermediate_size);
        break;
    }
    s.linear(layer.down, s.gate, count, s.projected);
    if (config.sandwich_norms) {
      cuda::rms_norm_rows(s.projected.data(), layer.post_feedforward_norm.data(), count, hidden, config.rms_norm_eps,
                          s.projected.data());
    }
    cuda::add_in_place(s.hidden.data(), s.projected.data(), count * hidden);
  }
  const int64_t outputs = count - which.first_token;
  cuda::rms_norm_rows(s.hidden.data() + which.first_token * hidden, s.final_norm.data(), outputs, hidden,
                      config.rms_norm_eps, s.normed.data());
  s.gemm.rows_times_weight(s.normed.data(), outputs, s.lm_head.weight.data(), s.lm_head.rows, s.lm_head.columns,
                           s.logits.data());
  const size_t count_out = static_cast<size_t>(outputs * config.vocab_size);
  s.staged_logits.download_from(s.logits, count_out);  // waits for the pass; reports its errors
  cuda::synchronize();
  // Out of the pinned buffer on the pool (one thread copies about 10 GB/s; a 512-token window's
  // logits are 100 MB), looking for NaN on the way.
  logits.resize(count_out);
  const size_t chunks = std::min<size_t>(static_cast<size_t>(s.pool.size()) * 4, (count_out + 65535) / 65536);
  std::vector<size_t> first_nan(chunks, count_out);
  s.pool.parallel_for(chunks, [&](size_t begin, size_t end) {
    for (size_t chunk = begin; chunk < end; ++chunk) {
      const size_t first = count_out * chunk / chunks, last = count_out * (chunk + 1) / chunks;
      std::copy(s.staged_logits.data() + first, s.staged_logits.data() + last, logits.data() + first);
      for (size_t i = first; i < last; ++i) {
        if (std::isnan(logits[i])) {
          first_nan[chunk] = i;
          break;
        }
      }
    }
  });
  const size_t nan_index = *std::min_element(first_nan.begin(), first_nan.end());
  if (nan_index < count_out) {
    fail("NaN in the GPU forward's logits at token ", which.first_token + static_cast<int64_t>(nan_index) / config.vocab_size,
         ", vocabulary entry ", static_cast<int64_t>(nan_index) % config.vocab_size);
  }
}

#else  // built without CUDA

struct GpuForward::State {};

bool gpu_forward_available() { return false; }

GpuForward::GpuForward(const Model&, int64_t, DType, ThreadPool&) {
  fail("--backend cuda: this hlwq was built without CUDA (configure with nvcc on the PATH and -DHLWQ_CUDA=ON)");
}

GpuForward::~GpuForward() = default;

uint64_t GpuForward::device_bytes() const { return 0; }

void GpuForward::window_logits(std::span<const int32_t>, LogitsFrom, std::vector<float>&) {
  fail("--backend cuda: this hlwq was built without CUDA");
}

std::vector<float> GpuForward::window_logits(std::span<const int32_t>, LogitsFrom) {
  fail("--backend cuda: this hlwq was built without CUDA");
}

#endif

}  // namespace hlwq
