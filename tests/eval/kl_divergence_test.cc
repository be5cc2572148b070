#include "eval/kl_divergence.h"

#include <gtest/gtest.h>

#include <cmath>

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

}  // namespace
}  // namespace hlwq
