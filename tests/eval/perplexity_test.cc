#include "eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"

namespace hlwq {
namespace {

TEST(Perplexity, LlamaCppProtocolScoresSecondHalfOfEachChunk) {
  const auto windows = perplexity_windows(1000, {256, 0, std::nullopt});
  ASSERT_EQ(windows.size(), 3u);  // 1000 / 256 whole chunks
  EXPECT_EQ(windows[2].begin, 512);
  EXPECT_EQ(windows[2].end, 768);
  EXPECT_EQ(windows[2].first_scored, 128);
}

// Sliding windows score every token after the first exactly once, whatever the stride.
TEST(Perplexity, SlidingWindowsScoreEachTokenOnce) {
  for (int64_t count : {2, 10, 513, 1000}) {
    for (int64_t stride : {1, 7, 128, 255}) {
      const PerplexityOptions options{256, stride, std::nullopt};
      std::vector<int> scored(count, 0);
      for (const PerplexityWindow& window : perplexity_windows(count, options)) {
        EXPECT_LE(window.end - window.begin, 256);
        for (int64_t position = window.first_scored; position + 1 < window.end - window.begin; ++position) {
          const int64_t target = window.begin + position + 1;
          ++scored[target];
          // at least context - stride tokens before it, unless it is in the first window
          if (window.begin > 0) EXPECT_GE(position + 1, 256 - stride - 1);
        }
      }
      for (int64_t i = 1; i < count; ++i) ASSERT_EQ(scored[i], 1) << count << " " << stride << " " << i;
      EXPECT_EQ(scored[0], 0);
    }
  }
}

TEST(Perplexity, KnownDistributionGivesKnownPerplexity) {
  // A "model" whose logits put probability p on the true next token and spread the rest evenly:
  // perplexity is exactly 1/p.
  const int64_t vocab = 50;
  ThreadPool pool(2);
  std::mt19937 generator(5);
  std::vector<int32_t> tokens(700);
  for (int32_t& token : tokens) token = static_cast<int32_t>(generator() % vocab);
  const double p = 0.3;
  // Rows first_row.. of a uniform spread of 1 - p over the vocabulary.
  const auto model = [&](std::span<const int32_t> window, int64_t first_row, std::vector<float>& logits) {
    logits.assign((window.size() - first_row) * vocab, static_cast<float>(std::log((1 - p) / (vocab - 1))));
  };
  // Use the visitor-free API on a sequence where each window's targets are known: build logits from
  // the full sequence instead.
  int64_t offset = 0;
  const auto model_with_targets = [&](std::span<const int32_t> window, int64_t first_row,
                                      std::vector<float>& logits) {
    model(window, first_row, logits);
    // locate the window: its tokens equal tokens[offset..] for the llama.cpp protocol except BOS
    for (size_t position = first_row; position + 1 < window.size(); ++position)
      logits[(position - first_row) * vocab + tokens[offset + position + 1]] = static_cast<float>(std::log(p));
    offset += static_cast<int64_t>(window.size());
  };
  const PerplexityResult result = compute_perplexity(tokens, vocab, {100, 0, std::nullopt}, model_with_targets, pool);
  EXPECT_EQ(result.windows, 7);
  EXPECT_EQ(result.tokens_scored, 7 * (100 - 1 - 50));
  EXPECT_NEAR(result.perplexity, 1 / p, 1e-4);
  EXPECT_NEAR(result.perplexity_stderr, 0.0, 1e-4);  // every token has the same loss
}

TEST(Perplexity, NegativeLogLikelihoodIsStable) {
  const std::vector<float> logits = {1000.0f, 999.0f, -1000.0f};
  EXPECT_NEAR(negative_log_likelihood(logits, 0), std::log(1 + std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(negative_log_likelihood(logits, 1), 1 + std::log(1 + std::exp(-1.0)), 1e-12);
}

TEST(Perplexity, BadOptionsAndShortText) {
  const auto model = [](std::span<const int32_t> window, int64_t first_row, std::vector<float>& logits) {
    logits.assign((window.size() - first_row) * 4, 0.0f);
  };
  std::vector<int32_t> tokens(10, 1);
  ThreadPool pool(2);
  EXPECT_THROW(compute_perplexity(tokens, 4, {64, 0, std::nullopt}, model, pool), Error);
  EXPECT_THROW(compute_perplexity(tokens, 4, {1, 0, std::nullopt}, model, pool), Error);
  EXPECT_THROW(compute_perplexity(tokens, 4, {8, 9, std::nullopt}, model, pool), Error);
  tokens[8] = 7;  // outside the vocabulary, and a scored target
  EXPECT_THROW(compute_perplexity(tokens, 4, {10, 0, std::nullopt}, model, pool), Error);
}

// Random logits per window (a function of the window's tokens, so every run sees the same ones).
WindowLogits random_model(int64_t vocab) {
  return [vocab](std::span<const int32_t> window, int64_t first_row, std::vector<float>& logits) {
    uint32_t seed = 1;
    for (int32_t token : window) seed = seed * 31 + static_cast<uint32_t>(token);
    std::mt19937 generator(seed);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    logits.resize((window.size() - first_row) * vocab);
    for (float& value : logits) value = normal(generator);
  };
}

// The log-likelihoods run on the pool, the sums in token order: the same bits for any thread
// count; and the visitor sees each window's scored tokens once, in order.
TEST(Perplexity, ResultsDoNotDependOnTheThreadCount) {
  const int64_t vocab = 300;
  std::mt19937 generator(9);
  std::vector<int32_t> tokens(1000);
  for (int32_t& token : tokens) token = static_cast<int32_t>(generator() % vocab);
  for (const PerplexityOptions& options : {PerplexityOptions{128, 0, 7}, PerplexityOptions{128, 48, std::nullopt}}) {
    std::vector<PerplexityResult> results;
    for (int threads : {1, 4}) {
      ThreadPool pool(threads);
      int64_t next_position = -1;
      std::vector<double> visited_losses;
      const ScoredWindowVisitor visitor = [&](const ScoredWindow& window) {
        // Sliding windows score every token once; llama.cpp windows skip each one's first half.
        if (next_position >= 0) {
          EXPECT_EQ(window.first_position, next_position + (options.stride > 0 ? 0 : 65));
        }
        next_position = window.first_position + static_cast<int64_t>(window.targets.size());
        ASSERT_GE(window.logits.size(), window.targets.size() * vocab);
        for (size_t k = 0; k < window.targets.size(); ++k) {
          ASSERT_EQ(window.targets[k], tokens[window.first_position + k + 1]);
          visited_losses.push_back(negative_log_likelihood(window.row(k), window.targets[k]));
        }
      };
      results.push_back(compute_perplexity(tokens, vocab, options, random_model(vocab), pool, visitor));
      ASSERT_EQ(static_cast<int64_t>(visited_losses.size()), results.back().tokens_scored);
      double sum = 0;
      for (double loss : visited_losses) sum += loss;
      EXPECT_EQ(sum / visited_losses.size(), results.back().mean_nll);  // the same sum, in the same order
    }
    EXPECT_EQ(results[0].to_json(), results[1].to_json());
    EXPECT_GT(results[0].mean_nll, 1.0);
  }
}

}  // namespace
}  // namespace hlwq
