#include "ops/cpu/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/error.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/attention_output_gate.h"
#include "ops/causal_conv1d.h"
#include "ops/delta_net_gates.h"
#include "ops/gated_delta_rule.h"
#include "ops/gated_rms_norm.h"
#include "ops/l2_normalize.h"
#include "ops/kv_cache.h"
#include "ops/linear.h"
#include "ops/rms_norm.h"
#include "ops/rotary_embedding.h"

namespace hlwq {

namespace {

std::span<float> host(Floats floats) { return {floats.data, static_cast<size_t>(floats.size)}; }

class CpuLinear final : public BackendLinear {
 public:
  explicit CpuLinear(const LinearWeight& weight) : weight_(weight) {}
  int64_t rows() const override { return weight_.rows; }
  int64_t columns() const override { return weight_.columns; }
  uint64_t device_bytes() const override { return weight_.stored_bytes(); }
  const LinearWeight& weight() const { return weight_; }

 private:
  const LinearWeight& weight_;
};

const LinearWeight& weight_of(const BackendLinear& linear) { return static_cast<const CpuLinear&>(linear).weight(); }

// One KvCache per sequence: a sequence's rows stay contiguous per layer, which the attention
// kernel walks without copying.
class CpuKvCache final : public BackendKvCache {
 public:
  explicit CpuKvCache(const KvCacheShape& shape) : shape_(shape) {
    check(shape.sequences > 0, "KV cache for ", shape.sequences, " sequences");
    for (int64_t sequence = 0; sequence < shape.sequences; ++sequence) {
      caches_.emplace_back(shape.layers, shape.kv_heads, shape.head_dim, shape.context_length, shape.dtype);
    }
  }
  const KvCacheShape& shape() const override { return shape_; }
  uint64_t device_bytes() const override {
    return 2 * static_cast<uint64_t>(shape_.sequences * shape_.layers * shape_.context_length * shape_.kv_heads *
                                     shape_.head_dim) *
           dtype_size(shape_.dtype);
  }
  KvCache& sequence(int64_t index) { return caches_.at(static_cast<size_t>(index)); }
  const KvCache& sequence(int64_t index) const { return caches_.at(static_cast<size_t>(index)); }

 private:
  KvCacheShape shape_;
  std::vector<KvCache> caches_;
};

class CpuRope final : public BackendRope {
 public:
  explicit CpuRope(std::span<const double> inverse_frequencies)
      : inverse_frequencies_(inverse_frequencies.begin(), inverse_frequencies.end()) {}
  std::vector<double> inverse_frequencies_;
  std::vector<RopeAngles> angles_;  // one per row of the current pass
};

// Per (delta-net layer, sequence): the conv state then the delta-rule state, F32.
class CpuDeltaNetState final : public BackendDeltaNetState {
 public:
  explicit CpuDeltaNetState(const DeltaNetStateShape& shape) : shape_(shape) {
    check(shape.layers > 0 && shape.sequences > 0 && shape.net.key_heads > 0 && shape.net.value_heads > 0 &&
              shape.net.key_head_dim > 0 && shape.net.value_head_dim > 0 && shape.net.conv_kernel > 1 &&
              shape.net.value_heads % shape.net.key_heads == 0,
          "delta-net state: bad shape (", shape.layers, " layers, ", shape.net.key_heads, " key heads, ",
          shape.net.value_heads, " value heads, conv kernel ", shape.net.conv_kernel, ")");
    values_.assign(static_cast<size_t>(shape.layers * shape.sequences * per_sequence()), 0.0f);
  }
  const DeltaNetStateShape& shape() const override { return shape_; }
  uint64_t device_bytes() const override { return values_.size() * sizeof(float); }
  std::span<float> conv(int64_t layer, int64_t sequence) {
    return std::span<float>(values_).subspan(offset(layer, sequence), static_cast<size_t>(shape_.net.conv_state_floats()));
  }
  std::span<float> rule(int64_t layer, int64_t sequence) {
    return std::span<float>(values_).subspan(offset(layer, sequence) + static_cast<size_t>(shape_.net.conv_state_floats()),
                                             static_cast<size_t>(shape_.net.rule_state_floats()));
  }

 private:
  int64_t per_sequence() const { return shape_.net.conv_state_floats() + shape_.net.rule_state_floats(); }
  size_t offset(int64_t layer, int64_t sequence) const {
    check(layer >= 0 && layer < shape_.layers && sequence >= 0 && sequence < shape_.sequences, "delta-net state of layer ",
          layer, ", sequence ", sequence, " outside ", shape_.layers, " x ", shape_.sequences);
    return static_cast<size_t>((layer * shape_.sequences + sequence) * per_sequence());
  }

  DeltaNetStateShape shape_;
  std::vector<float> values_;
};

}  // namespace

CpuBackend::CpuBackend(int threads) : owned_pool_(std::make_unique<ThreadPool>(threads)), pool_(owned_pool_.get()) {}

CpuBackend::CpuBackend(ThreadPool& pool) : pool_(&pool) {}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::description() const { return "cpu, " + std::to_string(pool_->size()) + " threads"; }

Buffer CpuBackend::allocate(int64_t floats) {
  check(floats >= 0, "allocation of ", floats, " floats");
  auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(floats));
  memory_.scratch += static_cast<uint64_t>(floats) * sizeof(float);
  return Buffer(Floats{values->data(), floats}, values);
}

Buffer CpuBackend::upload(std::span<const float> values) {
  auto copy = std::make_shared<std::vector<float>>(values.begin(), values.end());
  memory_.weights += values.size() * sizeof(float);
  return Buffer(Floats{copy->data(), static_cast<int64_t>(copy->size())}, copy);
}

void CpuBackend::download(Floats from, std::span<float> out) {
  check(static_cast<int64_t>(out.size()) <= from.size, "download of ", out.size(), " floats from ", from.size);
  std::memcpy(out.data(), from.data, out.size() * sizeof(float));
}

std::unique_ptr<BackendLinear> CpuBackend::upload_linear(const LinearWeight& weight) {
  memory_.weights += weight.stored_bytes();
  return std::make_unique<CpuLinear>(weight);
}

std::unique_ptr<BackendKvCache> CpuBackend::make_kv_cache(const KvCacheShape& shape) {
  auto cache = std::make_unique<CpuKvCache>(shape);
  memory_.kv_cache += cache->device_bytes();
  return cache;
}

std::unique_ptr<BackendRope> CpuBackend::make_rope(std::span<const double> inverse_frequencies, int64_t) {
  return std::make_unique<CpuRope>(inverse_frequencies);
}

std::unique_ptr<BackendDeltaNetState> CpuBackend::make_delta_net_state(const DeltaNetStateShape& shape) {
  auto state = std::make_unique<CpuDeltaNetState>(shape);
  memory_.kv_cache += state->device_bytes();
  return state;
}

std::unique_ptr<BackendPassInputs> CpuBackend::make_pass_inputs(int64_t) {
  return std::make_unique<BackendPassInputs>();
}

void CpuBackend::set_pass(BackendPassInputs&, std::span<const int32_t> tokens, std::span<const TokenPlace> places) {
  check(tokens.size() == places.size(), "a pass of ", tokens.size(), " tokens at ", places.size(), " places");
  tokens_.assign(tokens.begin(), tokens.end());
  places_.assign(places.begin(), places.end());
  runs_.clear();
  for (size_t first = 0; first < places_.size();) {
    size_t last = first + 1;
    while (last < places_.size() && places_[last].sequence == places_[first].sequence &&
           places_[last].position == places_[last - 1].position + 1) {
      ++last;
    }
    runs_.emplace_back(first, last);
    first = last;
  }
}

void CpuBackend::embed(const BackendLinear& table, float scale, Floats out) {
  const LinearWeight& weight = weight_of(table);
  const int64_t width = weight.columns;
  check(out.size == static_cast<int64_t>(tokens_.size()) * width, "embedding output of ", out.size, " floats");
  for (size_t row = 0; row < tokens_.size(); ++row) {
    const std::span<float> values = host(out.subspan(static_cast<int64_t>(row) * width, width));
    // MLX looks embeddings up with mx.dequantize (rounded to the scale dtype), unlike its matmul.
    dequantize_linear_row(weight, tokens_[row], values, AffineArithmetic::dequantize);
    if (scale != 1.0f) {
      for (float& value : values) value *= scale;
    }
  }
}

void CpuBackend::linear(const BackendLinear& weight, Floats x, int64_t rows, Floats y) {
  const LinearWeight& w = weight_of(weight);
  linear_forward(w, host(x.first(rows * w.columns)), rows, host(y.first(rows * w.rows)), *pool_);
}

void CpuBackend::linear_group(std::span<const BackendLinear* const> weights, Floats x, int64_t rows,
                              std::span<const Floats> ys) {
  check(weights.size() == ys.size(), "linear group of ", weights.size(), " weights and ", ys.size(), " outputs");
  std::vector<const LinearWeight*> cpu_weights;
  std::vector<std::span<float>> outputs;
  for (size_t i = 0; i < weights.size(); ++i) {
    cpu_weights.push_back(&weight_of(*weights[i]));
    outputs.push_back(host(ys[i].first(rows * cpu_weights.back()->rows)));
  }
  linear_forward_group(cpu_weights, host(x.first(rows * cpu_weights.front()->columns)), rows, outputs, *pool_);
}

void CpuBackend::add_bias(Floats values, Floats bias) {
  if (bias.size == 0) return;
  float* data = values.data;
  for (int64_t i = 0; i < values.size; ++i) data[i] += bias.data[i % bias.size];
}

void CpuBackend::rms_norm(Floats x, Floats weight, double eps, Floats out) {
  hlwq::rms_norm(host(x), host(weight), eps, host(out));
}

void CpuBackend::prepare_rope(BackendRope& rope) {
  auto& cpu = static_cast<CpuRope&>(rope);
  cpu.angles_.clear();
  for (const TokenPlace& place : places_) cpu.angles_.push_back(rope_angles(place.position, cpu.inverse_frequencies_));
}

void CpuBackend::apply_rope(Floats x, int64_t heads, int64_t head_dim, const BackendRope& rope) {
  const auto& cpu = static_cast<const CpuRope&>(rope);
  const int64_t width = heads * head_dim;
  check(cpu.angles_.size() == places_.size(), "RoPE angles not prepared for this pass");
  for (size_t row = 0; row < places_.size(); ++row) {
    hlwq::apply_rope(host(x.subspan(static_cast<int64_t>(row) * width, width)), head_dim, cpu.angles_[row]);
  }
}

void CpuBackend::store_kv(BackendKvCache& cache, int64_t layer, Floats keys, Floats values) {
  auto& cpu = static_cast<CpuKvCache&>(cache);
  const int64_t width = cache.shape().kv_heads * cache.shape().head_dim;
  for (size_t row = 0; row < places_.size(); ++row) {
    const TokenPlace place = places_[row];
    const auto offset = static_cast<int64_t>(row) * width;
    cpu.sequence(place.sequence).store(layer, place.position, host(keys.subspan(offset, width)),
                                       host(values.subspan(offset, width)));
  }
}

void CpuBackend::attention(Floats queries, const BackendKvCache& cache, int64_t layer, const AttentionShape& shape,
                           Floats out) {
  const auto& cpu = static_cast<const CpuKvCache&>(cache);
  const int64_t width = shape.heads * shape.head_dim;
  // A run of rows (a prefill is one) goes to the kernel together, so its threads split the run's
  // (token, head) pairs.
  for (const auto& [first, last] : runs_) {
    const auto run = static_cast<int64_t>(last - first);
    const auto offset = static_cast<int64_t>(first) * width;
    causal_attention(host(queries.subspan(offset, run * width)), run, places_[first].position, layer,
                     cpu.sequence(places_[first].sequence), shape, host(out.subspan(offset, run * width)), *pool_);
  }
}

void CpuBackend::split_query_and_gate(Floats projected, int64_t heads, int64_t head_dim, Floats query, Floats gate) {
  hlwq::split_query_and_gate(host(projected), heads, head_dim, host(query), host(gate));
}

void CpuBackend::sigmoid_gate(Floats x, Floats gate) { apply_sigmoid_gate(host(x), host(gate)); }

void CpuBackend::delta_net_conv(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats weight, Floats out) {
  auto& cpu = static_cast<CpuDeltaNetState&>(state);
  const DeltaNetShape& net = state.shape().net;
  const int64_t channels = net.conv_channels();
  check(mixed.size == static_cast<int64_t>(places_.size()) * channels && out.size == mixed.size,
        "delta-net conv of ", mixed.size, " floats for ", places_.size(), " rows of ", channels, " channels");
  for (const auto& [first, last] : runs_) {
    const std::span<float> conv_state = cpu.conv(layer, places_[first].sequence);
    if (places_[first].position == 0) std::fill(conv_state.begin(), conv_state.end(), 0.0f);
    const auto offset = static_cast<int64_t>(first) * channels, size = static_cast<int64_t>(last - first) * channels;
    causal_conv1d_silu(host(mixed.subspan(offset, size)), channels, host(weight), net.conv_kernel, conv_state,
                       host(out.subspan(offset, size)));
  }
}

void CpuBackend::delta_net_rule(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats a, Floats b,
                                Floats a_log, Floats dt_bias, Floats out) {
  auto& cpu = static_cast<CpuDeltaNetState&>(state);
  const DeltaNetShape& net = state.shape().net;
  const int64_t channels = net.conv_channels(), key_dim = net.key_dim(), value_dim = net.value_dim();
  const auto rows = static_cast<int64_t>(places_.size());
  check(mixed.size == rows * channels && a.size == rows * net.value_heads && b.size == a.size &&
            out.size == rows * value_dim,
        "delta-net rule: sizes do not fit ", rows, " rows");
  const GatedDeltaShape shape{net.key_heads, net.value_heads, net.key_head_dim, net.value_head_dim};
  const float query_scale = 1.0f / std::sqrt(static_cast<float>(net.key_head_dim));
  for (const auto& [first, last] : runs_) {
    const auto count = static_cast<int64_t>(last - first);
    // The run's q, k (normalized), v, decay and beta, contiguous as the rule's kernel reads them.
    delta_scratch_.resize(static_cast<size_t>(count * (2 * key_dim + value_dim + 2 * net.value_heads)));
    const std::span<float> scratch(delta_scratch_);
    const std::span<float> query = scratch.first(static_cast<size_t>(count * key_dim));
    const std::span<float> key = scratch.subspan(query.size(), query.size());
    const std::span<float> value = scratch.subspan(2 * query.size(), static_cast<size_t>(count * value_dim));
    const std::span<float> decay =
        scratch.subspan(2 * query.size() + value.size(), static_cast<size_t>(count * net.value_heads));
    const std::span<float> beta = scratch.subspan(2 * query.size() + value.size() + decay.size(), decay.size());
    for (int64_t t = 0; t < count; ++t) {
      const float* row = mixed.data + (static_cast<int64_t>(first) + t) * channels;
      std::copy(row, row + key_dim, query.begin() + t * key_dim);
      std::copy(row + key_dim, row + 2 * key_dim, key.begin() + t * key_dim);
      std::copy(row + 2 * key_dim, row + channels, value.begin() + t * value_dim);
    }
    l2_normalize(query, net.key_head_dim, 1e-6, query_scale, query);
    l2_normalize(key, net.key_head_dim, 1e-6, 1.0f, key);
    const int64_t gate_offset = static_cast<int64_t>(first) * net.value_heads;
    delta_net_gates(host(a.subspan(gate_offset, count * net.value_heads)),
                    host(b.subspan(gate_offset, count * net.value_heads)), host(a_log), host(dt_bias), decay, beta);
    const std::span<float> rule_state = cpu.rule(layer, places_[first].sequence);
    if (places_[first].position == 0) std::fill(rule_state.begin(), rule_state.end(), 0.0f);
    // Token by token: on the CPU the chunked form measures slower than the recurrence at these sizes.
    gated_delta_rule_recurrent(shape, GatedDeltaInputs{query, key, value, decay, beta}, rule_state,
                               host(out.subspan(static_cast<int64_t>(first) * value_dim, count * value_dim)), pool_);
  }
}

void CpuBackend::gated_rms_norm(Floats x, Floats z, Floats weight, double eps, Floats out) {
  hlwq::gated_rms_norm(host(x), host(z), host(weight), eps, host(out));
}

double CpuBackend::measure_read_bandwidth() {
  ThreadPool& pool = *pool_;
  const size_t bytes = size_t{1} << 30;  // 1 GiB: far beyond any last-level cache
  AlignedBuffer buffer(bytes);
  std::memset(buffer.data(), 1, bytes);
  const auto words = buffer.as<uint64_t>();
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8, 0);
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<size_t>(pool.size()), [&](size_t begin, size_t end) {
      for (size_t part = begin; part < end; ++part) {
        const size_t first = words.size() * part / pool.size(), last = words.size() * (part + 1) / pool.size();
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = first; i + 4 <= last; i += 4) {
          a += words[i];
          b += words[i + 1];
          c += words[i + 2];
          d += words[i + 3];
        }
        sums[part * 8] = a + b + c + d;
      }
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t total = 0;
    for (uint64_t sum : sums) total += sum;
    check(total > 0, "internal: bandwidth read optimized away");
    best = std::max(best, bytes / seconds);
  }
  return best;
}

void CpuBackend::silu_mul(Floats gate, Floats up) { hlwq::silu_mul(host(gate), host(up), host(gate)); }

void CpuBackend::gelu_tanh_mul(Floats gate, Floats up) { hlwq::gelu_tanh_mul(host(gate), host(up), host(gate)); }

void CpuBackend::add(Floats target, Floats addend) {
  for (int64_t i = 0; i < target.size; ++i) target.data[i] += addend.data[i];
}

}  // namespace hlwq
