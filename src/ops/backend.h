// The interface every model architecture is written against: memory on a device, weights uploaded
// once in their own format, sequence state (KV caches), and the coarse ops a decoder layer needs.
// The CPU backend (ops/cpu/cpu_backend.h) calls the Highway kernels; the CUDA backend
// (ops/cuda/cuda_backend.h) enqueues kernels on one stream, so a decode step can be captured in a
// CUDA graph. Ops are coarse (a whole linear, a whole attention) so a virtual call costs nothing
// next to the work, and an architecture is only a composition of them (engine/model_runner.cc).
//
// A pass works on R "rows": tokens, each at a place (sequence slot, position), set once per pass
// with set_pass(). Prefill is R tokens of one sequence; batched decode is one token of each of R
// sequences. Every op reads the current pass's places; none takes host data, so a pass recorded
// once can be replayed (set_pass, then replay).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "ops/attention.h"
#include "ops/linear_weight.h"

namespace hlwq {

enum class BackendKind { cpu, cuda };

// "cpu" or "cuda"; anything else is an error that lists both.
BackendKind parse_backend_kind(std::string_view name);
const char* backend_kind_name(BackendKind kind);

// A view of floats in a backend's memory: host memory on the CPU, GPU memory on CUDA. Host code
// never reads through it; Backend::download copies values out.
struct Floats {
  float* data = nullptr;
  int64_t size = 0;
  Floats subspan(int64_t offset, int64_t count) const { return {data + offset, count}; }
  Floats first(int64_t count) const { return {data, count}; }
  // Rows first_row .. first_row + rows - 1 of a row-major matrix of `width` columns.
  Floats rows(int64_t first_row, int64_t rows, int64_t width) const { return {data + first_row * width, rows * width}; }
};

// Owned floats on a backend, released with it.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Floats floats, std::shared_ptr<void> owner) : floats_(floats), owner_(std::move(owner)) {}
  Floats floats() const { return floats_; }
  int64_t size() const { return floats_.size; }
  bool empty() const { return floats_.size == 0; }

 private:
  Floats floats_;
  std::shared_ptr<void> owner_;
};

// A linear weight uploaded in its storage format.
class BackendLinear {
 public:
  virtual ~BackendLinear() = default;
  virtual int64_t rows() const = 0;
  virtual int64_t columns() const = 0;
  virtual uint64_t device_bytes() const = 0;
};

// The keys and values of `sequences` sequences of up to context_length positions each, per layer.
struct KvCacheShape {
  int64_t layers = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t context_length = 0;
  int64_t sequences = 1;
  DType dtype = DType::F16;  // F32, F16 or BF16
};

class BackendKvCache {
 public:
  virtual ~BackendKvCache() = default;
  virtual const KvCacheShape& shape() const = 0;
  virtual uint64_t device_bytes() const = 0;
};

// The rotation of one set of RoPE frequencies (a model has one, Gemma 3 two). The CPU makes each
// row's cos/sin once per pass (prepare_rope); CUDA reads a table of every position.
class BackendRope {
 public:
  virtual ~BackendRope() = default;
};

// The recurrent state of the gated delta-net layers of a hybrid model (Qwen3.5's linear attention),
// per (delta-net layer, sequence): the conv state (conv_kernel - 1 inputs of conv_channels(), the
// oldest first) and the delta-rule state (value_heads x key_head_dim x value_head_dim), both F32.
// Unlike a KV cache it holds no positions: a pass continues a sequence from where its last pass
// ended, or restarts it at position 0 (rows at position 0 start from zeros).
struct DeltaNetShape {
  int64_t key_heads = 0;
  int64_t value_heads = 0;  // a multiple of key_heads: key head h / (value_heads / key_heads) serves value head h
  int64_t key_head_dim = 0;
  int64_t value_head_dim = 0;
  int64_t conv_kernel = 0;
  int64_t key_dim() const { return key_heads * key_head_dim; }
  int64_t value_dim() const { return value_heads * value_head_dim; }
  // The conv's channels: q (key_dim), k (key_dim), v (value_dim), in in_proj_qkv's order.
  int64_t conv_channels() const { return 2 * key_dim() + value_dim(); }
  int64_t conv_state_floats() const { return (conv_kernel - 1) * conv_channels(); }
  int64_t rule_state_floats() const { return value_heads * key_head_dim * value_head_dim; }
};

struct DeltaNetStateShape {
  int64_t layers = 0;  // delta-net layers (not every layer of the model)
  int64_t sequences = 1;
  DeltaNetShape net;
};

class BackendDeltaNetState {
 public:
  virtual ~BackendDeltaNetState() = default;
  virtual const DeltaNetStateShape& shape() const = 0;
  virtual uint64_t device_bytes() const = 0;
};

// Where a pass's row sits.
struct TokenPlace {
  int32_t sequence = 0;
  int32_t position = 0;
};

class BackendPassInputs {
 public:
  virtual ~BackendPassInputs() = default;
};

// A recorded pass (a CUDA graph); replayed after set_pass with places of the same count.
class BackendGraph {
 public:
  virtual ~BackendGraph() = default;
};

struct BackendMemory {
  uint64_t weights = 0;    // linear weights, norms, biases
  uint64_t kv_cache = 0;
  uint64_t scratch = 0;    // activations and the kernels' workspaces
  uint64_t peak_in_use = 0;  // the device's own measure where it has one (CUDA), else 0
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendKind kind() const = 0;
  virtual std::string description() const = 0;  // e.g. "cpu, 2 threads" or "cuda, NVIDIA H100 80GB HBM3"

  // Memory. allocate() counts as scratch, upload() as weights.
  virtual Buffer allocate(int64_t floats) = 0;
  virtual Buffer upload(std::span<const float> values) = 0;
  // Copies floats [offset, offset + out.size()) of `from` to the host; waits for queued work.
  virtual void download(Floats from, std::span<float> out) = 0;
  virtual std::unique_ptr<BackendLinear> upload_linear(const LinearWeight& weight) = 0;
  virtual std::unique_ptr<BackendKvCache> make_kv_cache(const KvCacheShape& shape) = 0;
  // RoPE rotating the first 2 x inverse_frequencies.size() values of each head (rotate-half pairs i,
  // i + inverse_frequencies.size()); the rest of a head passes through (partial rotary).
  virtual std::unique_ptr<BackendRope> make_rope(std::span<const double> inverse_frequencies, int64_t max_position) = 0;
  virtual std::unique_ptr<BackendDeltaNetState> make_delta_net_state(const DeltaNetStateShape& shape) = 0;
  virtual BackendMemory memory() const = 0;
  // Bytes per second a large streaming read reaches on this device (the decode roofline's
  // denominator), measured now.
  virtual double measure_read_bandwidth() = 0;

  // Where a pass's token ids and places live on the device, for passes of up to max_rows rows. A
  // runner keeps its own, so the passes it records keep reading the same buffers.
  virtual std::unique_ptr<BackendPassInputs> make_pass_inputs(int64_t max_rows) = 0;
  // The rows of the next ops: token ids (checked by the caller) and their places, written into
  // `inputs`, which the ops then read.
  virtual void set_pass(BackendPassInputs& inputs, std::span<const int32_t> tokens,
                        std::span<const TokenPlace> places) = 0;
  // Rows of the embedding table for the pass's tokens, times scale: out is rows x columns.
  virtual void embed(const BackendLinear& table, float scale, Floats out) = 0;
  // y = x W^T for `rows` rows of x (the pass's first rows, or any rows the caller chose).
  virtual void linear(const BackendLinear& weight, Floats x, int64_t rows, Floats y) = 0;
  // Several weights of the same columns on one x: ys[i] = x weights[i]^T (may share work).
  virtual void linear_group(std::span<const BackendLinear* const> weights, Floats x, int64_t rows,
                            std::span<const Floats> ys) = 0;
  // Each of the rows of `values` (its size / bias.size rows) plus bias.
  virtual void add_bias(Floats values, Floats bias) = 0;
  // RMSNorm of each weight.size-wide row of x into out (may alias x).
  virtual void rms_norm(Floats x, Floats weight, double eps, Floats out) = 0;
  // Makes the pass's rotations of `rope` (after set_pass; before apply_rope).
  virtual void prepare_rope(BackendRope& rope) = 0;
  // Rotates each head of each pass row (x: rows x heads*head_dim) at the row's position.
  virtual void apply_rope(Floats x, int64_t heads, int64_t head_dim, const BackendRope& rope) = 0;
  // Stores each pass row's keys and values (rows x kv_heads*head_dim) at its place in `layer`.
  virtual void store_kv(BackendKvCache& cache, int64_t layer, Floats keys, Floats values) = 0;
  // Causal attention of each pass row over its sequence's positions 0..position of `layer`.
  virtual void attention(Floats queries, const BackendKvCache& cache, int64_t layer, const AttentionShape& shape,
                         Floats out) = 0;
  // Qwen3.5's gated full attention: q_proj's output (rows x heads x 2 head_dim, per head the query
  // then the gate) split into query and gate (rows x heads x head_dim each); later x *= sigmoid(gate).
  virtual void split_query_and_gate(Floats projected, int64_t heads, int64_t head_dim, Floats query,
                                    Floats gate) = 0;
  virtual void sigmoid_gate(Floats x, Floats gate) = 0;
  // The gated delta-net, over the pass's rows in order, each with its sequence's state of `layer`:
  // delta_net_conv: out = silu(causal depthwise conv1d of `mixed` (rows x conv_channels, weight
  // conv_channels x conv_kernel)), out must not alias mixed.
  virtual void delta_net_conv(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats weight,
                              Floats out) = 0;
  // delta_net_rule: from the conv's output (q | k | v per row), a and b (rows x value_heads, from
  // in_proj_a / in_proj_b), A_log and dt_bias (value_heads): q and k L2-normalized per head (eps
  // 1e-6, q times key_head_dim^-0.5), decay g = -exp(A_log) softplus(a + dt_bias), beta =
  // sigmoid(b), then the gated delta rule; out is rows x value_dim.
  virtual void delta_net_rule(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats a, Floats b,
                              Floats a_log, Floats dt_bias, Floats out) = 0;
  // out = x / sqrt(mean(x^2) + eps) * weight * silu(z), per weight.size-wide row (out may alias x).
  virtual void gated_rms_norm(Floats x, Floats z, Floats weight, double eps, Floats out) = 0;
  // gate = silu(gate) * up, or gelu_tanh(gate) * up.
  virtual void silu_mul(Floats gate, Floats up) = 0;
  virtual void gelu_tanh_mul(Floats gate, Floats up) = 0;
  // target += addend.
  virtual void add(Floats target, Floats addend) = 0;
  // target += addend, then out = RMSNorm of each weight.size-wide row of target: a block's residual
  // sum and the next block's input norm, which a backend may do in one pass over the rows (the
  // CUDA backend saves a kernel and a round trip of the hidden state). The same numbers as add then
  // rms_norm.
  virtual void add_and_rms_norm(Floats target, Floats addend, Floats weight, double eps, Floats out) {
    add(target, addend);
    rms_norm(target, weight, eps, out);
  }
  // Waits for queued work; reports its errors.
  virtual void synchronize() = 0;

  // Recording a pass: ops between begin_recording and end_recording are recorded, not run (CUDA
  // graphs); returns nothing where the backend cannot record (then run the ops each time).
  virtual bool can_record() const { return false; }
  virtual void begin_recording() {}
  virtual std::unique_ptr<BackendGraph> end_recording() { return nullptr; }
  // Replays a recorded pass; false (nothing run) when it is stale, e.g. a kernel workspace it
  // points into was reallocated since by a larger pass: record it again.
  virtual bool replay(BackendGraph&) { return false; }
};

// The CPU backend (threads: 0 = every core), or CUDA's; throws hlwq::Error when CUDA was not built
// or no GPU is visible.
std::unique_ptr<Backend> make_backend(BackendKind kind, int threads);

// True when this hlwq was built with CUDA and a GPU is visible.
bool cuda_backend_available();

}  // namespace hlwq
