// The CPU backend: host memory, weights used where they were loaded (no copy), the Highway kernels
// of ops/ on a thread pool. Its passes give the same floats as calling those kernels directly.
#pragma once

#include <memory>

#include "core/thread_pool.h"
#include "ops/backend.h"

namespace hlwq {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads);  // 0: every core
  explicit CpuBackend(ThreadPool& pool);  // borrows the pool, which must outlive this
  ~CpuBackend() override;

  ThreadPool& pool() { return *pool_; }

  BackendKind kind() const override { return BackendKind::cpu; }
  std::string description() const override;
  Buffer allocate(int64_t floats) override;
  Buffer upload(std::span<const float> values) override;
  void download(Floats from, std::span<float> out) override;
  // The weight is used in place: it must outlive the returned handle.
  std::unique_ptr<BackendLinear> upload_linear(const LinearWeight& weight) override;
  std::unique_ptr<BackendKvCache> make_kv_cache(const KvCacheShape& shape) override;
  std::unique_ptr<BackendRope> make_rope(std::span<const double> inverse_frequencies, int64_t max_position) override;
  std::unique_ptr<BackendDeltaNetState> make_delta_net_state(const DeltaNetStateShape& shape) override;
  BackendMemory memory() const override { return memory_; }
  double measure_read_bandwidth() override;

  std::unique_ptr<BackendPassInputs> make_pass_inputs(int64_t max_rows) override;
  void set_pass(BackendPassInputs& inputs, std::span<const int32_t> tokens,
                std::span<const TokenPlace> places) override;
  void embed(const BackendLinear& table, float scale, Floats out) override;
  void linear(const BackendLinear& weight, Floats x, int64_t rows, Floats y) override;
  void linear_group(std::span<const BackendLinear* const> weights, Floats x, int64_t rows,
                    std::span<const Floats> ys) override;
  void add_bias(Floats values, Floats bias) override;
  void rms_norm(Floats x, Floats weight, double eps, Floats out) override;
  void prepare_rope(BackendRope& rope) override;
  void apply_rope(Floats x, int64_t heads, int64_t head_dim, const BackendRope& rope) override;
  void store_kv(BackendKvCache& cache, int64_t layer, Floats keys, Floats values) override;
  void attention(Floats queries, const BackendKvCache& cache, int64_t layer, const AttentionShape& shape,
                 Floats out) override;
  void split_query_and_gate(Floats projected, int64_t heads, int64_t head_dim, Floats query, Floats gate) override;
  void sigmoid_gate(Floats x, Floats gate) override;
  void delta_net_conv(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats weight, Floats out) override;
  void delta_net_rule(BackendDeltaNetState& state, int64_t layer, Floats mixed, Floats a, Floats b, Floats a_log,
                      Floats dt_bias, Floats out) override;
  void gated_rms_norm(Floats x, Floats z, Floats weight, double eps, Floats out) override;
  void silu_mul(Floats gate, Floats up) override;
  void gelu_tanh_mul(Floats gate, Floats up) override;
  void add(Floats target, Floats addend) override;
  void synchronize() override {}

 private:
  std::unique_ptr<ThreadPool> owned_pool_;
  ThreadPool* pool_;
  std::vector<int32_t> tokens_;
  std::vector<TokenPlace> places_;
  // The pass's runs: rows of one sequence at consecutive positions (a prefill is one run).
  std::vector<std::pair<size_t, size_t>> runs_;
  std::vector<float> delta_scratch_;  // delta_net_rule's normalized q, k, v and gates of a run
  BackendMemory memory_;
};

}  // namespace hlwq
