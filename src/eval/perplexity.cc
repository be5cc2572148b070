#include "eval/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "core/interrupt.h"
#include "ops/vocabulary_row.h"

namespace hlwq {

nlohmann::json PerplexityResult::to_json() const {
  return {{"perplexity", perplexity},         {"perplexity_stderr", perplexity_stderr},
          {"mean_nll", mean_nll},             {"mean_nll_stderr", mean_nll_stderr},
          {"tokens_scored", tokens_scored},   {"windows", windows}};
}

double negative_log_likelihood(std::span<const float> logits, int32_t target) {
  return log_sum_exp(logits) - static_cast<double>(logits[target]);
}

std::vector<PerplexityWindow> perplexity_windows(int64_t token_count, const PerplexityOptions& options) {
  check(options.context >= 2, "--ctx must be at least 2 (got ", options.context, ")");
  check(options.stride >= 0 && options.stride <= options.context,
        "--stride must be between 1 and --ctx (got ", options.stride, ")");
  std::vector<PerplexityWindow> windows;
  if (options.stride == 0) {
    // llama.cpp: chunks of `context` tokens; the first half of each chunk is context only.
    for (int64_t begin = 0; begin + options.context <= token_count; begin += options.context)
      windows.push_back({begin, begin + options.context, options.context / 2});
    return windows;
  }
  // Sliding windows: a window ending at `end` scores the predictions of tokens after the previous
  // window's end, so each token (after the first) is scored once.
  int64_t scored_until = 1;  // tokens [1, scored_until) are already scored
  for (int64_t begin = 0; scored_until < token_count; begin += options.stride) {
    const int64_t end = std::min(begin + options.context, token_count);
    // Window position p predicts token begin + p + 1; score those targets >= scored_until.
    // With stride == context the windows do not overlap and a window's first token has no
    // prediction inside it: it goes unscored (as in the Hugging Face recipe).
    windows.push_back({begin, end, std::max<int64_t>(0, scored_until - 1 - begin)});
    scored_until = end;
    if (end == token_count) break;
  }
  return windows;
}

PerplexityResult compute_perplexity(std::span<const int32_t> tokens, int64_t vocab_size,
                                    const PerplexityOptions& options, const WindowLogits& window_logits,
                                    ThreadPool& pool, const ScoredWindowVisitor& visitor) {
  const std::vector<PerplexityWindow> windows = perplexity_windows(static_cast<int64_t>(tokens.size()), options);
  check(!windows.empty(), "text too short: ", tokens.size(), " tokens for a context of ", options.context);
  double sum = 0, sum_squares = 0;
  int64_t count = 0;
  std::vector<int32_t> window_tokens;
  std::vector<float> logits;
  std::vector<double> losses, log_sums;  // per scored token of the window, filled in parallel
  for (const PerplexityWindow& window : windows) {
    throw_if_interrupted();
    window_tokens.assign(tokens.begin() + window.begin, tokens.begin() + window.end);
    if (options.stride == 0 && options.bos_token) window_tokens[0] = *options.bos_token;
    window_logits(window_tokens, window.first_scored, logits);
    const int64_t length = window.end - window.begin;
    check(static_cast<int64_t>(logits.size()) == (length - window.first_scored) * vocab_size,
          "internal: logits size mismatch");
    // Window position first_scored + k predicts the token after it.
    const size_t scored_count = static_cast<size_t>(length - 1 - window.first_scored);
    losses.resize(scored_count);
    log_sums.resize(scored_count);
    const ScoredWindow scored{window.begin + window.first_scored, vocab_size, logits,
                              tokens.subspan(window.begin + window.first_scored + 1, scored_count), log_sums};
    const auto in_vocabulary = [&](int32_t target) { return target >= 0 && target < vocab_size; };
    // Each row's log-sum-exp is kept: the visitor's KL-divergence and saved rows need it too.
    pool.parallel_for(scored_count, [&](size_t begin, size_t end) {
      for (size_t k = begin; k < end; ++k) {
        const int32_t target = scored.targets[k];
        log_sums[k] = log_sum_exp(scored.row(k));
        losses[k] = in_vocabulary(target) ? log_sums[k] - static_cast<double>(scored.row(k)[target]) : NAN;
      }
    });
    // Checked and summed in sequence order: the first bad token is the one reported, and the sums
    // round the same way whatever the thread count.
    for (size_t k = 0; k < losses.size(); ++k) {
      const int32_t target = scored.targets[k];
      check(in_vocabulary(target), "token id ", target, " outside the vocabulary (", vocab_size, ")");
      check(std::isfinite(losses[k]), "non-finite logits at token ", scored.first_position + static_cast<int64_t>(k));
      sum += losses[k];
      sum_squares += losses[k] * losses[k];
      ++count;
    }
    if (visitor && !losses.empty()) visitor(scored);
  }
  PerplexityResult result;
  result.tokens_scored = count;
  result.windows = static_cast<int64_t>(windows.size());
  result.mean_nll = sum / count;
  const double variance = count > 1 ? (sum_squares / count - result.mean_nll * result.mean_nll) * count / (count - 1) : 0;
  result.mean_nll_stderr = std::sqrt(std::max(0.0, variance) / count);
  result.perplexity = std::exp(result.mean_nll);
  result.perplexity_stderr = result.perplexity * result.mean_nll_stderr;
  return result;
}

}  // namespace hlwq
