// The gated delta rule (recurrent and chunked forms) and its gates: against transformers'
// torch_recurrent_gated_delta_rule / torch_chunk_gated_delta_rule, against the plain reference on
// fresh random inputs, and prefill-then-steps against one pass.
#include "ops/gated_delta_rule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "ops/delta_net_gates.h"
#include "ops/l2_normalize.h"
#include "qwen35_ops_fixture.h"
#include "test_util.h"

namespace hlwq {
namespace {

// Inputs as a delta-net layer makes them: q, k L2-normalized (q scaled by 1/sqrt(key_dim)), decays
// from a realistic range (exp(A_log) in [0.05, 2], softplus of a normal), beta in (0, 1).
struct RandomInputs {
  GatedDeltaShape shape;
  std::vector<float> query, key, value, decay, beta, state;
  int64_t tokens = 0;

  RandomInputs(const GatedDeltaShape& s, int64_t token_count, uint32_t seed) : shape(s), tokens(token_count) {
    const int64_t key_row = shape.key_heads * shape.key_dim;
    query = random_normal(tokens * key_row, seed);
    key = random_normal(tokens * key_row, seed + 1);
    l2_normalize(query, shape.key_dim, 1e-6, static_cast<float>(1 / std::sqrt(double(shape.key_dim))), query);
    l2_normalize(key, shape.key_dim, 1e-6, 1.0f, key);
    value = random_normal(tokens * shape.value_heads * shape.value_dim, seed + 2);
    const std::vector<float> a = random_normal(tokens * shape.value_heads, seed + 3);
    const std::vector<float> b = random_normal(tokens * shape.value_heads, seed + 4);
    std::mt19937 generator(seed + 5);
    std::uniform_real_distribution<float> log_rate(std::log(0.05f), std::log(2.0f));
    std::vector<float> a_log(shape.value_heads), dt_bias(shape.value_heads);
    for (auto& v : a_log) v = log_rate(generator);
    for (auto& v : dt_bias) v = 0.5f * log_rate(generator);
    decay.resize(a.size());
    beta.resize(a.size());
    delta_net_gates(a, b, a_log, dt_bias, decay, beta);
    state = random_normal(shape.value_heads * shape.key_dim * shape.value_dim, seed + 6, 0.3f);
  }
  GatedDeltaInputs inputs() const { return {query, key, value, decay, beta}; }
  GatedDeltaInputs inputs(int64_t first, int64_t count) const {
    const size_t key_row = shape.key_heads * shape.key_dim, value_row = shape.value_heads * shape.value_dim;
    const size_t heads = shape.value_heads;
    return {std::span(query).subspan(first * key_row, count * key_row),
            std::span(key).subspan(first * key_row, count * key_row),
            std::span(value).subspan(first * value_row, count * value_row),
            std::span(decay).subspan(first * heads, count * heads), std::span(beta).subspan(first * heads, count * heads)};
  }
  size_t out_size() const { return tokens * shape.value_heads * shape.value_dim; }
};

// The fixture: 150 tokens, 2 key heads of 16, 4 value heads of 24, a random initial state; q and k raw
// (normalized here as the layer does), decay and beta from transformers' formulas.
struct FixtureInputs {
  GatedDeltaShape shape{2, 4, 16, 24};
  std::vector<float> query = qwen35_ops_tensor("delta.query"), key = qwen35_ops_tensor("delta.key"),
                     value = qwen35_ops_tensor("delta.value"), decay = qwen35_ops_tensor("delta.decay"),
                     beta = qwen35_ops_tensor("delta.beta"), state = qwen35_ops_tensor("delta.state_in");
  FixtureInputs() {
    l2_normalize(query, shape.key_dim, 1e-6, static_cast<float>(1 / std::sqrt(16.0)), query);
    l2_normalize(key, shape.key_dim, 1e-6, 1.0f, key);
  }
  GatedDeltaInputs inputs() const { return {query, key, value, decay, beta}; }
};

TEST(DeltaNetGates, MatchesTransformers) {
  const std::vector<float> a = qwen35_ops_tensor("delta.a"), b = qwen35_ops_tensor("delta.b");
  std::vector<float> decay(a.size()), beta(a.size());
  delta_net_gates(a, b, qwen35_ops_tensor("delta.A_log"), qwen35_ops_tensor("delta.dt_bias"), decay, beta);
  EXPECT_LT(largest_difference(decay, qwen35_ops_tensor("delta.decay")), 2e-6);
  EXPECT_LT(largest_difference(beta, qwen35_ops_tensor("delta.beta")), 1e-6);
  for (float g : decay) ASSERT_LT(g, 0.0f);
}

TEST(L2Normalize, MatchesTransformersL2norm) {
  const std::vector<float> query = qwen35_ops_tensor("delta.query");
  std::vector<float> out(query.size());
  l2_normalize(query, 16, 1e-6, 1.0f, out);
  EXPECT_LT(largest_difference(out, qwen35_ops_tensor("l2.query_normalized")), 1e-6);
  // A row of zeros stays zero (eps under the root, no division by zero).
  std::vector<float> zeros(16, 0.0f), normalized(16, 5.0f);
  l2_normalize(zeros, 16, 1e-6, 1.0f, normalized);
  EXPECT_EQ(normalized, zeros);
}

TEST(GatedDeltaRule, RecurrentMatchesTransformers) {
  FixtureInputs fixture;
  std::vector<float> out(fixture.value.size());
  gated_delta_rule_recurrent(fixture.shape, fixture.inputs(), fixture.state, out);
  const std::vector<float> expected = qwen35_ops_tensor("delta.recurrent_output");
  const std::vector<float> expected_state = qwen35_ops_tensor("delta.recurrent_state");
  // 150 float steps of the same recurrence in a different summation order; outputs and state are of order 1.
  const double output_error = largest_difference(out, expected);
  const double state_error = largest_difference(fixture.state, expected_state);
  std::cout << "recurrent vs transformers: output " << output_error << ", state " << state_error << " (largest output "
            << largest_magnitude(expected) << ")\n";
  EXPECT_LT(output_error, 2e-5);
  EXPECT_LT(state_error, 2e-5);
}

TEST(GatedDeltaRule, ChunkedMatchesTransformersChunked) {
  FixtureInputs fixture;
  std::vector<float> out(fixture.value.size());
  gated_delta_rule_chunked(fixture.shape, fixture.inputs(), fixture.state, out, nullptr, 64);
  const double output_error = largest_difference(out, qwen35_ops_tensor("delta.chunked_output"));
  const double state_error = largest_difference(fixture.state, qwen35_ops_tensor("delta.chunked_state"));
  std::cout << "chunked vs transformers chunked: output " << output_error << ", state " << state_error << "\n";
  EXPECT_LT(output_error, 2e-5);
  EXPECT_LT(state_error, 2e-5);
  // And transformers' two forms agree with each other within the same bound.
  EXPECT_LT(largest_difference(qwen35_ops_tensor("delta.chunked_output"), qwen35_ops_tensor("delta.recurrent_output")),
            2e-5);
}

// Both forms against the double reference, on fresh inputs, for head groupings 1, 2 and 4, chunk
// sizes that divide the sequence and that do not, and a single token.
TEST(GatedDeltaRule, BothFormsMatchReferenceOnRandomInputs) {
  ThreadPool pool(2);
  uint32_t seed = 1000;
  double worst_recurrent = 0, worst_chunked = 0;  // relative to 1 + largest output
  for (const GatedDeltaShape shape : {GatedDeltaShape{2, 2, 16, 16}, GatedDeltaShape{2, 4, 32, 24},
                                      GatedDeltaShape{1, 4, 8, 40}}) {
    for (int64_t tokens : {1, 5, 64, 131}) {
      for (int64_t chunk : {1, 7, 64}) {
        const RandomInputs data(shape, tokens, seed += 10);
        std::vector<float> reference_state = data.state, recurrent_state = data.state, chunked_state = data.state;
        std::vector<float> expected(data.out_size()), recurrent(data.out_size()), chunked(data.out_size());
        gated_delta_rule_reference(shape, data.inputs(), reference_state, expected);
        gated_delta_rule_recurrent(shape, data.inputs(), recurrent_state, recurrent, &pool);
        gated_delta_rule_chunked(shape, data.inputs(), chunked_state, chunked, &pool, chunk);
        const double scale = 1 + largest_magnitude(expected);
        const std::string where = "heads " + std::to_string(shape.key_heads) + "/" + std::to_string(shape.value_heads) +
                                  ", tokens " + std::to_string(tokens) + ", chunk " + std::to_string(chunk);
        EXPECT_LT(largest_difference(recurrent, expected), 1e-5 * scale) << where;
        EXPECT_LT(largest_difference(recurrent_state, reference_state), 1e-5 * scale) << where;
        EXPECT_LT(largest_difference(chunked, expected), 2e-5 * scale) << where;
        EXPECT_LT(largest_difference(chunked_state, reference_state), 2e-5 * scale) << where;
        worst_recurrent = std::max(worst_recurrent, largest_difference(recurrent, expected) / scale);
        worst_chunked = std::max(worst_chunked, largest_difference(chunked, expected) / scale);
      }
    }
  }
  std::cout << "vs double reference, worst |error| / (1 + max |out|): recurrent " << worst_recurrent << ", chunked "
            << worst_chunked << "\n";
}

// Prefill N tokens (chunked) then M single steps (recurrent) equals one chunked pass over N + M.
TEST(GatedDeltaRule, PrefillThenStepsEqualsOnePass) {
  const GatedDeltaShape shape{2, 4, 16, 24};
  const int64_t prefill = 70, steps = 9;
  const RandomInputs data(shape, prefill + steps, 77);
  const size_t value_row = shape.value_heads * shape.value_dim;
  std::vector<float> whole_state = data.state, whole(data.out_size());
  gated_delta_rule_chunked(shape, data.inputs(), whole_state, whole);

  std::vector<float> state = data.state, pieces(data.out_size(), -1.0f);
  gated_delta_rule_chunked(shape, data.inputs(0, prefill), state, std::span(pieces).first(prefill * value_row));
  for (int64_t t = prefill; t < prefill + steps; ++t) {
    gated_delta_rule_recurrent(shape, data.inputs(t, 1), state, std::span(pieces).subspan(t * value_row, value_row));
  }
  const double scale = 1 + largest_magnitude(whole);
  std::cout << "chunked prefill + steps vs one pass: " << largest_difference(pieces, whole) << "\n";
  EXPECT_LT(largest_difference(pieces, whole), 2e-5 * scale);
  EXPECT_LT(largest_difference(state, whole_state), 2e-5 * scale);

  // Recurrent steps alone: the same arithmetic whatever the split, bit for bit.
  std::vector<float> recurrent_state = data.state, recurrent(data.out_size());
  gated_delta_rule_recurrent(shape, data.inputs(), recurrent_state, recurrent);
  std::vector<float> split_state = data.state, split(data.out_size());
  gated_delta_rule_recurrent(shape, data.inputs(0, prefill), split_state, std::span(split).first(prefill * value_row));
  gated_delta_rule_recurrent(shape, data.inputs(prefill, steps), split_state,
                             std::span(split).subspan(prefill * value_row));
  EXPECT_EQ(split, recurrent);
  EXPECT_EQ(split_state, recurrent_state);
}

TEST(GatedDeltaRule, ThreadsGiveTheSameBits) {
  const GatedDeltaShape shape{4, 8, 32, 32};
  const RandomInputs data(shape, 100, 5);
  ThreadPool pool(2);
  for (bool chunked : {false, true}) {
    std::vector<float> alone_state = data.state, pooled_state = data.state;
    std::vector<float> alone(data.out_size()), pooled(data.out_size());
    if (chunked) {
      gated_delta_rule_chunked(shape, data.inputs(), alone_state, alone, nullptr);
      gated_delta_rule_chunked(shape, data.inputs(), pooled_state, pooled, &pool);
    } else {
      gated_delta_rule_recurrent(shape, data.inputs(), alone_state, alone, nullptr);
      gated_delta_rule_recurrent(shape, data.inputs(), pooled_state, pooled, &pool);
    }
    EXPECT_EQ(alone, pooled) << (chunked ? "chunked" : "recurrent");
    EXPECT_EQ(alone_state, pooled_state) << (chunked ? "chunked" : "recurrent");
  }
}

// A chunk whose cumulative decay underflows float (g = -60 per token): the state is forgotten, no
// NaN from 0 / 0, and both forms still agree with the reference.
TEST(GatedDeltaRule, StrongDecayStaysFinite) {
  const GatedDeltaShape shape{1, 2, 8, 8};
  RandomInputs data(shape, 40, 9);
  for (float& g : data.decay) g = -60.0f;
  std::vector<float> reference_state = data.state, chunked_state = data.state;
  std::vector<float> expected(data.out_size()), chunked(data.out_size());
  gated_delta_rule_reference(shape, data.inputs(), reference_state, expected);
  gated_delta_rule_chunked(shape, data.inputs(), chunked_state, chunked, nullptr, 16);
  for (float v : chunked) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LT(largest_difference(chunked, expected), 1e-5 * (1 + largest_magnitude(expected)));
  EXPECT_LT(largest_difference(chunked_state, reference_state), 1e-5);
}

TEST(GatedDeltaRule, RejectsBadShapes) {
  std::vector<float> q(32), k(32), v(48), g(3), beta(3), state(3 * 16 * 16), out(48);
  const GatedDeltaInputs inputs{q, k, v, g, beta};
  EXPECT_NE(error_message([&] { gated_delta_rule_recurrent({2, 3, 16, 16}, inputs, state, out); }).find("multiple"),
            std::string::npos);
  std::vector<float> short_state(10);
  EXPECT_NE(error_message([&] { gated_delta_rule_chunked({1, 3, 32, 16}, inputs, short_state, out); }).find("state"),
            std::string::npos);
}

}  // namespace
}  // namespace hlwq
