#include "ops/cuda/cuda_backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/error.h"
#include "ops/cuda/delta_net_kernels.h"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_linear.h"
#include "ops/cuda/kv_cache_kernels.h"
#include "ops/cuda/read_bandwidth.h"
#include "ops/cuda/transformer_kernels.h"

namespace hlwq {

namespace {

using cuda::check_cuda;

// Device memory of any type, freed with the owner.
std::shared_ptr<void> device_allocation(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* pointer = nullptr;
  check_cuda(cudaMalloc(&pointer, bytes), "cudaMalloc");
  return std::shared_ptr<void>(pointer, [](void* p) { cudaFree(p); });
}

std::shared_ptr<void> pinned_allocation(size_t bytes) {
  void* pointer = nullptr;
  check_cuda(cudaMallocHost(&pointer, bytes), "cudaMallocHost");
  return std::shared_ptr<void>(pointer, [](void* p) { cudaFreeHost(p); });
}

class CudaLinear final : public BackendLinear {
 public:
  explicit CudaLinear(const LinearWeight& weight) : linear_(weight) {}
  int64_t rows() const override { return linear_.rows(); }
  int64_t columns() const override { return linear_.columns(); }
  uint64_t device_bytes() const override { return linear_.device_bytes(); }
  const cuda::DeviceLinear& linear() const { return linear_; }

 private:
  cuda::DeviceLinear linear_;
};

const cuda::DeviceLinear& device_linear(const BackendLinear& linear) {
  return static_cast<const CudaLinear&>(linear).linear();
}

class CudaKvCache final : public BackendKvCache {
 public:
  explicit CudaKvCache(const KvCacheShape& shape) : shape_(shape) {
    check(shape.layers > 0 && shape.kv_heads > 0 && shape.head_dim > 0 && shape.context_length > 0 &&
              shape.sequences > 0,
          "KV cache sizes must be positive");
    cuda::CacheStorage storage = cuda::CacheStorage::f16;
    switch (shape.dtype) {
      case DType::F32: storage = cuda::CacheStorage::f32; break;
      case DType::F16: storage = cuda::CacheStorage::f16; break;
      case DType::BF16: storage = cuda::CacheStorage::bf16; break;
      default: fail("KV cache dtype ", dtype_name(shape.dtype), " is not F32, F16 or BF16");
    }
    bytes_ = static_cast<uint64_t>(shape.sequences * shape.layers * shape.context_length * shape.kv_heads *
                                   shape.head_dim) *
             dtype_size(shape.dtype);
    keys_ = device_allocation(bytes_);
    values_ = device_allocation(bytes_);
    device_ = cuda::DeviceKvCache{keys_.get(), values_.get(), storage, shape.sequences, shape.layers,
                                  shape.context_length, shape.kv_heads, shape.head_dim};
  }
  const KvCacheShape& shape() const override { return shape_; }
  uint64_t device_bytes() const override { return 2 * bytes_; }
  const cuda::DeviceKvCache& device() const { return device_; }

 private:
  KvCacheShape shape_;
  uint64_t bytes_ = 0;
  std::shared_ptr<void> keys_, values_;
  cuda::DeviceKvCache device_;
};

// cos and sin of every position up to max_position for each frequency, made on the host in double
// as the CPU's rope_angles makes them, rounded to float.
class CudaRope final : public BackendRope {
 public:
  CudaRope(std::span<const double> inverse_frequencies, int64_t max_position) : positions_(max_position) {
    half_ = static_cast<int64_t>(inverse_frequencies.size());
    std::vector<float> cosines(static_cast<size_t>(positions_ * half_)), sines(cosines.size());
    for (int64_t position = 0; position < positions_; ++position) {
      for (int64_t i = 0; i < half_; ++i) {
        const double angle = static_cast<double>(position) * inverse_frequencies[i];
        cosines[position * half_ + i] = static_cast<float>(std::cos(angle));
        sines[position * half_ + i] = static_cast<float>(std::sin(angle));
      }
    }
    cosines_ = cuda::DeviceBuffer(cosines.size());
    cosines_.upload(cosines.data(), cosines.size());
    sines_ = cuda::DeviceBuffer(sines.size());
    sines_.upload(sines.data(), sines.size());
  }
  int64_t positions_, half_ = 0;
  cuda::DeviceBuffer cosines_, sines_;
};

// Every delta-net layer's conv and rule states in one device allocation, laid out as the CPU's:
// per (layer, sequence) the conv state then the rule state. Zeroed once; a row at position 0
// zeroes its sequence's state again in the kernels.
class CudaDeltaNetState final : public BackendDeltaNetState {
 public:
  explicit CudaDeltaNetState(const DeltaNetStateShape& shape) : shape_(shape) {
    const DeltaNetShape& net = shape.net;
    check(shape.layers > 0 && shape.sequences > 0 && net.key_heads > 0 && net.value_heads > 0 && net.key_head_dim > 0 &&
              net.value_head_dim > 0 && net.conv_kernel > 1 && net.value_heads % net.key_heads == 0,
          "delta-net state: bad shape (", shape.layers, " layers, ", net.key_heads, " key heads, ", net.value_heads,
          " value heads, conv kernel ", net.conv_kernel, ")");
    per_sequence_ = net.conv_state_floats() + net.rule_state_floats();
    bytes_ = static_cast<uint64_t>(shape.layers * shape.sequences * per_sequence_) * sizeof(float);
    memory_ = device_allocation(bytes_);
    check_cuda(cudaMemset(memory_.get(), 0, bytes_), "delta-net state");
  }
  const DeltaNetStateShape& shape() const override { return shape_; }
  uint64_t device_bytes() const override { return bytes_; }
  cuda::DeltaNetStateView view(int64_t layer) const {
    check(layer >= 0 && layer < shape_.layers, "delta-net layer ", layer, " of ", shape_.layers);
    const DeltaNetShape& net = shape_.net;
    return cuda::DeltaNetStateView{static_cast<float*>(memory_.get()) + layer * shape_.sequences * per_sequence_,
                                   per_sequence_,
                                   net.key_heads,
                                   net.value_heads,
                                   net.key_head_dim,
                                   net.value_head_dim,
                                   net.conv_kernel,
                                   net.conv_channels()};
  }

 private:
  DeltaNetStateShape shape_;
  int64_t per_sequence_ = 0;
  uint64_t bytes_ = 0;
  std::shared_ptr<void> memory_;
};

// A pass's token ids and (sequence, position) pairs: pinned host staging and the device copies the
// kernels read.
class CudaPassInputs final : public BackendPassInputs {
 public:
  explicit CudaPassInputs(int64_t max_rows) : capacity(static_cast<size_t>(max_rows)) {
    check(max_rows > 0, "pass inputs for ", max_rows, " rows");
    pinned_tokens = pinned_allocation(capacity * sizeof(int32_t));
    pinned_places = pinned_allocation(capacity * sizeof(TokenPlace));
    device_tokens = device_allocation(capacity * sizeof(int32_t));
    device_places = device_allocation(capacity * sizeof(TokenPlace));
  }
  size_t capacity;
  std::shared_ptr<void> pinned_tokens, pinned_places, device_tokens, device_places;
};

class CudaGraph final : public BackendGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, uint64_t workspace_bytes) : exec_(exec), workspace_bytes_(workspace_bytes) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  cudaGraphExec_t exec_;
  // The kernels' workspace only grows (reallocating); a graph recorded at another size points into
  // freed buffers.
  uint64_t workspace_bytes_;
};

// HLWQ_GEMV_VERSION=1|2|3|4 runs every HLWQ decode product with that kernel version
// (docs/KERNELS.md), so that `hlwq bench` can compare them end to end in one process; unset or 0
// keeps the fastest measured per batch.
cuda::kernels::GemvVersion gemv_version_from_environment() {
  const char* value = std::getenv("HLWQ_GEMV_VERSION");
  const std::string text = value == nullptr ? "" : value;
  if (text.empty() || text == "0") return cuda::kernels::GemvVersion::best_measured;
  check(text == "1" || text == "2" || text == "3" || text == "4", "HLWQ_GEMV_VERSION must be 0, 1, 2, 3 or 4, not '",
        text, "'");
  return static_cast<cuda::kernels::GemvVersion>(text[0] - '0');
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    int device = 0;
    check_cuda(cudaGetDevice(&device), "cudaGetDevice");
    cudaDeviceProp properties{};
    check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
    name_ = properties.name;
    sm_count_ = properties.multiProcessorCount;
    size_t free = 0, total = 0;
    check_cuda(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    baseline_in_use_ = total - free;
    workspace_.set_gemv_version(gemv_version_from_environment());
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  BackendKind kind() const override { return BackendKind::cuda; }
  std::string description() const override { return "cuda, " + name_; }

  Buffer allocate(int64_t floats) override {
    check(floats >= 0, "allocation of ", floats, " floats");
    auto memory = device_allocation(static_cast<size_t>(floats) * sizeof(float));
    memory_.scratch += static_cast<uint64_t>(floats) * sizeof(float);
    note_peak();
    return Buffer(Floats{static_cast<float*>(memory.get()), floats}, memory);
  }

  Buffer upload(std::span<const float> values) override {
    auto memory = device_allocation(values.size() * sizeof(float));
    if (!values.empty()) {
      check_cuda(cudaMemcpy(memory.get(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice),
                 "upload");
    }
    memory_.weights += values.size() * sizeof(float);
    note_peak();
    return Buffer(Floats{static_cast<float*>(memory.get()), static_cast<int64_t>(values.size())}, memory);
  }

  void download(Floats from, std::span<float> out) override {
    check(static_cast<int64_t>(out.size()) <= from.size, "download of ", out.size(), " floats from ", from.size);
    const size_t bytes = out.size() * sizeof(float);
    if (bytes > staging_bytes_) {
      staging_ = pinned_allocation(bytes);
      staging_bytes_ = bytes;
    }
    check_cuda(cudaMemcpyAsync(staging_.get(), from.data, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    synchronize();
    std::memcpy(out.data(), staging_.get(), bytes);
  }

  std::unique_ptr<BackendLinear> upload_linear(const LinearWeight& weight) override {
    auto linear = std::make_unique<CudaLinear>(weight);
    memory_.weights += linear->device_bytes();
    note_peak();
    return linear;
  }

  std::unique_ptr<BackendKvCache> make_kv_cache(const KvCacheShape& shape) override {
    auto cache = std::make_unique<CudaKvCache>(shape);
    memory_.kv_cache += cache->device_bytes();
    note_peak();
    return cache;
  }

  std::unique_ptr<BackendRope> make_rope(std::span<const double> inverse_frequencies, int64_t max_position) override {
    auto rope = std::make_unique<CudaRope>(inverse_frequencies, max_position);
    memory_.weights += 2 * rope->cosines_.size() * sizeof(float);
    return rope;
  }

  std::unique_ptr<BackendDeltaNetState> make_delta_net_state(const DeltaNetStateShape& shape) override {
    auto state = std::make_unique<CudaDeltaNetState>(shape);
    memory_.kv_cache += state->device_bytes();
    note_peak();
    return state;
  }

  BackendMemory memory() const override {
    BackendMemory memory = memory_;
    memory.scratch += workspace_.device_bytes() + static_cast<uint64_t>(partial_capacity_) * sizeof(float);
    memory.peak_in_use = peak_in_use_;
    return memory;
  }

  std::unique_ptr<BackendPassInputs> make_pass_inputs(int64_t max_rows) override {
    return std::make_unique<CudaPassInputs>(max_rows);
  }

  double measure_read_bandwidth() override {
    synchronize();
    return cuda::measure_read_bandwidth();
  }

  void set_pass(BackendPassInputs& inputs, std::span<const int32_t> tokens,
                std::span<const TokenPlace> places) override {
    check(tokens.size() == places.size(), "a pass of ", tokens.size(), " tokens at ", places.size(), " places");
    auto& pass = static_cast<CudaPassInputs&>(inputs);
    const size_t rows = tokens.size();
    check(rows <= pass.capacity, "a pass of ", rows, " rows above the ", pass.capacity, " made room for");
    // Host staging (pinned), then one copy each on the stream: a replayed graph reads the device
    // buffers, which these copies fill before it. The stream is idle here (every pass ends with a
    // download, which waits), so the staging is not still being read.
    std::memcpy(pass.pinned_tokens.get(), tokens.data(), rows * sizeof(int32_t));
    std::memcpy(pass.pinned_places.get(), places.data(), rows * sizeof(TokenPlace));
    check_cuda(cudaMemcpyAsync(pass.device_tokens.get(), pass.pinned_tokens.get(), rows * sizeof(int32_t),
                               cudaMemcpyHostToDevice, stream_),
               "pass tokens");
    check_cuda(cudaMemcpyAsync(pass.device_places.get(), pass.pinned_places.get(), rows * sizeof(TokenPlace),
                               cudaMemcpyHostToDevice, stream_),
               "pass places");
    rows_ = static_cast<int64_t>(rows);
    tokens_ = static_cast<const int32_t*>(pass.device_tokens.get());
    places_ = static_cast<const int32_t*>(pass.device_places.get());
  }

  void embed(const BackendLinear& table, float scale, Floats out) override {
    cuda::gather_rows(device_linear(table), tokens(), rows_, scale, out.data, stream_);
  }

  void linear(const BackendLinear& weight, Floats x, int64_t rows, Floats y) override {
    cuda::linear_forward(device_linear(weight), x.data, rows, y.data, workspace_, stream_);
  }

  void linear_group(std::span<const BackendLinear* const> weights, Floats x, int64_t rows,
                    std::span<const Floats> ys) override {
    check(weights.size() == ys.size(), "linear group of ", weights.size(), " weights and ", ys.size(), " outputs");
    std::vector<const cuda::DeviceLinear*> linears;
    std::vector<float*> outputs;
    for (size_t i = 0; i < weights.size(); ++i) {
      linears.push_back(&device_linear(*weights[i]));
      outputs.push_back(ys[i].data);
    }
    cuda::linear_forward_group(linears, x.data, rows, outputs, workspace_, stream_);
  }

  void add_bias(Floats values, Floats bias) override {
    if (bias.size == 0) return;
    cuda::add_row_bias(values.data, bias.data, values.size / bias.size, bias.size, stream_);
  }

  void rms_norm(Floats x, Floats weight, double eps, Floats out) override {
    cuda::rms_norm_rows(x.data, weight.data, x.size / weight.size, weight.size, eps, out.data, stream_);
  }

  void prepare_rope(BackendRope&) override {}

  void apply_rope(Floats x, int64_t heads, int64_t head_dim, const BackendRope& rope) override {
    const auto& table = static_cast<const CudaRope&>(rope);
    check(table.half_ > 0 && table.half_ * 2 <= head_dim, "RoPE of ", table.half_, " frequencies on heads of ",
          head_dim);
    cuda::apply_rope_at_places(x.data, rows_, heads, head_dim, table.half_, places(), table.cosines_.data(), table.sines_.data(),
                               table.positions_, stream_);
  }

  void store_kv(BackendKvCache& cache, int64_t layer, Floats keys, Floats values) override {
    cuda::store_kv_rows(static_cast<CudaKvCache&>(cache).device(), layer, keys.data, values.data, rows_, places(),
                        stream_);
  }

  void attention(Floats queries, const BackendKvCache& cache, int64_t layer, const AttentionShape& shape,
                 Floats out) override {
    const float scale = static_cast<float>(shape.scale != 0 ? shape.scale
                                                            : 1.0 / std::sqrt(static_cast<double>(shape.head_dim)));
    const cuda::DeviceKvCache& device = static_cast<const CudaKvCache&>(cache).device();
    const int64_t splits = cuda::attention_splits(device, rows_, shape.heads, sm_count_);
    const int64_t partial_floats = cuda::attention_partial_floats(device, rows_, shape.heads, splits);
    if (partial_floats > partial_capacity_) {
      // Grows outside recordings only: the runner runs each pass size once before recording it, and
      // a graph recorded before a growth is stale (recorded_bytes).
      check(!recording_, "internal: attention partials grow while recording");
      attention_partials_ = device_allocation(static_cast<size_t>(partial_floats) * sizeof(float));
      partial_capacity_ = partial_floats;
      note_peak();
    }
    cuda::cache_attention(device, layer, queries.data, rows_, shape.heads, scale, places(), out.data, stream_, splits,
                          static_cast<float*>(attention_partials_.get()));
  }

  void split_query_and_gate(Floats projected, int64_t heads, int64_t head_dim, Floats query, Floats gate) override {
    check(projected.size == 2 * query.size && gate.size == query.size && query.size % (heads * head_dim) == 0,
          "query/gate split of ", projected.size, " floats into ", query.size, " and ", gate.size);
    cuda::split_query_and_gate(projected.data, query.size / head_dim, head_dim, query.data, gate.data, stream_);
  }

  void sigmoid_gate(Floats x, Floats gate) override {
    check(x.size == gate.size, "sigmoid gate of ", gate.size, " floats on ", x.size);
    cuda::sigmoid_gate(x.data, gate.data, x.size, stream_);
  }

  void delta_net_conv(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats weight, Floats out) override {
    const DeltaNetShape& net = state.shape().net;
    check(mixed.size == rows_ * net.conv_channels() && out.size == mixed.size &&
              weight.size == net.conv_channels() * net.conv_kernel,
          "delta-net conv of ", mixed.size, " floats for ", rows_, " rows of ", net.conv_channels(), " channels");
    cuda::delta_net_conv(static_cast<CudaDeltaNetState&>(state).view(layer), mixed.data, weight.data, rows_, places(),
                         out.data, stream_);
  }

  void delta_net_rule(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats a, Floats b, Floats a_log,
                      Floats dt_bias, Floats out) override {
    const DeltaNetShape& net = state.shape().net;
    check(mixed.size == rows_ * net.conv_channels() && a.size == rows_ * net.value_heads && b.size == a.size &&
              a_log.size == net.value_heads && dt_bias.size == net.value_heads && out.size == rows_ * net.value_dim(),
          "delta-net rule: sizes do not fit ", rows_, " rows");
    cuda::delta_net_rule(static_cast<CudaDeltaNetState&>(state).view(layer), mixed.data, a.data, b.data, a_log.data,
                         dt_bias.data, rows_, places(), out.data, stream_);
  }

  void gated_rms_norm(Floats x, Floats z, Floats weight, double eps, Floats out) override {
    check(weight.size > 0 && x.size % weight.size == 0 && z.size == x.size && out.size == x.size,
          "gated RMSNorm of ", x.size, " floats in rows of ", weight.size);
    cuda::gated_rms_norm_rows(x.data, z.data, weight.data, x.size / weight.size, weight.size, eps, out.data, stream_);
  }

  void silu_mul(Floats gate, Floats up) override { cuda::silu_mul(gate.data, up.data, gate.size, stream_); }
  void gelu_tanh_mul(Floats gate, Floats up) override { cuda::gelu_tanh_mul(gate.data, up.data, gate.size, stream_); }
  void add(Floats target, Floats addend) override { cuda::add_in_place(target.data, addend.data, target.size, stream_); }

  void synchronize() override {
    check_cuda(cudaStreamSynchronize(stream_), "GPU pass");
    note_peak();
  }

  bool can_record() const override { return true; }

  void begin_recording() override {
    check_cuda(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    recording_ = true;
  }

  std::unique_ptr<BackendGraph> end_recording() override {
    cudaGraph_t graph = nullptr;
    recording_ = false;
    check_cuda(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check_cuda(status, "cudaGraphInstantiate");
    return std::make_unique<CudaGraph>(exec, recorded_bytes());
  }

  bool replay(BackendGraph& graph) override {
    auto& recorded = static_cast<CudaGraph&>(graph);
    if (recorded.workspace_bytes_ != recorded_bytes()) return false;
    check_cuda(cudaGraphLaunch(recorded.exec_, stream_), "cudaGraphLaunch");
    return true;
  }

 private:
  // What a recorded graph points into that may be reallocated: the linear kernels' workspace and
  // the attention partials (both only grow).
  uint64_t recorded_bytes() const {
    return workspace_.device_bytes() + static_cast<uint64_t>(partial_capacity_) * sizeof(float);
  }
  const int32_t* tokens() const { return tokens_; }
  const int32_t* places() const { return places_; }

  void note_peak() {
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      peak_in_use_ = std::max<uint64_t>(peak_in_use_, total - free - baseline_in_use_);
    }
  }

  cudaStream_t stream_ = nullptr;
  std::string name_;
  int sm_count_ = 1;
  bool recording_ = false;
  std::shared_ptr<void> attention_partials_;  // split-KV decode's partial sums
  int64_t partial_capacity_ = 0;
  cuda::LinearWorkspace workspace_;
  BackendMemory memory_;
  uint64_t baseline_in_use_ = 0, peak_in_use_ = 0;
  std::shared_ptr<void> staging_;
  size_t staging_bytes_ = 0;
  // The current pass (set_pass): its rows and device inputs.
  int64_t rows_ = 0;
  const int32_t* tokens_ = nullptr;
  const int32_t* places_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace hlwq
