#include "eval/kl_divergence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/logits_file.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(LogitsFile, RoundTripKeepsLogProbabilitiesWithin16BitSteps) {
  TemporaryFolder folder;
  const uint32_t vocab = 1000;
  std::vector<std::vector<float>> rows;
  {
    LogitsFileWriter writer(folder.path() / "base.logits", vocab);
    for (int i = 0; i < 20; ++i) {
      rows.push_back(random_normal(vocab, 40 + i, 3.0f));
      writer.add(rows.back(), i * 7);
    }
    writer.close();
  }
  const LogitsFile file = LogitsFile::open(folder.path() / "base.logits");
  ASSERT_EQ(file.count(), 20u);
  std::vector<float> expected(vocab), got(vocab);
  for (uint64_t i = 0; i < file.count(); ++i) {
    EXPECT_EQ(file.target(i), static_cast<int32_t>(i * 7));
    log_softmax(rows[i], expected);
    file.log_probs(i, got);
    for (uint32_t v = 0; v < vocab; ++v) {
      if (expected[v] > -30) {
        ASSERT_NEAR(got[v], expected[v], 30.0 / 65535) << i << " " << v;
      }
    }
  }
  // Truncated files are rejected.
  std::filesystem::resize_file(folder.path() / "base.logits", std::filesystem::file_size(folder.path() / "base.logits") - 1);
  EXPECT_THROW(LogitsFile::open(folder.path() / "base.logits"), Error);
}

TEST(KlDivergence, IdenticalIsZeroAndKnownPairMatchesFormula) {
  const std::vector<float> logits = random_normal(64, 3, 2.0f);
  std::vector<float> log_probs(64);
  log_softmax(logits, log_probs);
  KlDivergenceAccumulator same;
  same.add(log_probs, logits, 5);
  EXPECT_NEAR(same.mean(), 0.0, 1e-9);
  EXPECT_EQ(same.to_json()["top1_agreement"], 1.0);

  // Two-token distributions: KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q)).
  const double p = 0.8, q = 0.6;
  const std::vector<float> reference = {static_cast<float>(std::log(p)), static_cast<float>(std::log(1 - p))};
  const std::vector<float> model = {static_cast<float>(std::log(q)), static_cast<float>(std::log(1 - q))};
  KlDivergenceAccumulator pair;
  pair.add(reference, model, 1);
  EXPECT_NEAR(pair.mean(), p * std::log(p / q) + (1 - p) * std::log((1 - p) / (1 - q)), 1e-6);
  EXPECT_NEAR(pair.to_json()["rms_delta_p"].get<double>(), std::fabs((1 - q) - (1 - p)), 1e-6);
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream stream(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(stream), {}};
}

// Rows quantized apart from the writer (in any order, as threads do) and appended in token order
// make the same file as add().
TEST(LogitsFile, QuantizedRowsAppendedInOrderMatchAdd) {
  TemporaryFolder folder;
  const uint32_t vocab = 700;
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 9; ++i) rows.push_back(random_normal(vocab, 70 + i, 4.0f));
  rows[3][5] = 80.0f;  // one dominant token: most values at the floor
  {
    LogitsFileWriter writer(folder.path() / "added.logits", vocab);
    for (size_t i = 0; i < rows.size(); ++i) writer.add(rows[i], static_cast<int32_t>(i * 11));
    writer.close();
  }
  std::vector<QuantizedLogProbs> records(rows.size());
  for (size_t i = rows.size(); i-- > 0;) quantize_log_probs(rows[i], static_cast<int32_t>(i * 11), records[i]);
  {
    LogitsFileWriter writer(folder.path() / "appended.logits", vocab);
    for (const QuantizedLogProbs& record : records) writer.append(record);
    QuantizedLogProbs short_row;
    quantize_log_probs(std::span<const float>(rows[0]).first(vocab - 1), 0, short_row);
    EXPECT_THROW(writer.append(short_row), Error);
    writer.close();
  }
  const std::string added = file_bytes(folder.path() / "added.logits");
  EXPECT_EQ(added.size(), 20 + rows.size() * (12 + 2 * vocab));
  EXPECT_TRUE(added == file_bytes(folder.path() / "appended.logits"));
  // The record decodes to the log-softmax within one 16-bit step.
  std::vector<float> expected(vocab);
  for (size_t i : {0, 3}) {
    log_softmax(rows[i], expected);
    const QuantizedLogProbs& record = records[i];
    EXPECT_EQ(record.target, static_cast<int32_t>(i * 11));
    for (uint32_t v = 0; v < vocab; ++v) {
      const float decoded = record.offset + record.scale * record.values[v];
      ASSERT_NEAR(decoded, std::max(expected[v], record.offset), record.scale) << i << " " << v;
    }
  }
}

// token_divergence against a plain double-precision computation on random distributions.
TEST(KlDivergence, TokenDivergenceMatchesPlainFormula) {
  const size_t vocab = 500;
  for (uint32_t seed = 0; seed < 5; ++seed) {
    const std::vector<float> reference_logits = random_normal(vocab, 100 + seed, 2.0f);
    std::vector<float> logits = reference_logits;
    const std::vector<float> noise = random_normal(vocab, 200 + seed, 0.5f);
    for (size_t i = 0; i < vocab; ++i) logits[i] += noise[i];
    std::vector<float> reference_log_probs(vocab);
    log_softmax(reference_logits, reference_log_probs);
    double reference_total = 0, model_total = 0;
    for (size_t i = 0; i < vocab; ++i) {
      reference_total += std::exp(static_cast<double>(reference_logits[i]));
      model_total += std::exp(static_cast<double>(logits[i]));
    }
    double expected = 0;
    size_t reference_best = 0, model_best = 0;
    for (size_t i = 0; i < vocab; ++i) {
      const double p = std::exp(static_cast<double>(reference_logits[i])) / reference_total;
      const double q = std::exp(static_cast<double>(logits[i])) / model_total;
      expected += p * std::log(p / q);
      if (reference_logits[i] > reference_logits[reference_best]) reference_best = i;
      if (logits[i] > logits[model_best]) model_best = i;
    }
    const int32_t target = static_cast<int32_t>(seed * 37);
    const TokenDivergence token = token_divergence(reference_log_probs, logits, target);
    EXPECT_GT(token.divergence, 1e-3);
    EXPECT_NEAR(token.divergence, expected, 1e-5 + 1e-4 * expected) << seed;
    EXPECT_EQ(token.top1_agrees, reference_best == model_best) << seed;
    const double change = std::exp(static_cast<double>(logits[target])) / model_total -
                          std::exp(static_cast<double>(reference_logits[target])) / reference_total;
    EXPECT_NEAR(token.probability_change, change, 1e-6) << seed;
  }
  EXPECT_THROW(token_divergence(std::vector<float>(4, -1.0f), std::vector<float>(4, 0.0f), 4), Error);
  EXPECT_THROW(token_divergence(std::vector<float>(4, -1.0f), std::vector<float>(5, 0.0f), 0), Error);
}

}  // namespace
}  // namespace hlwq
