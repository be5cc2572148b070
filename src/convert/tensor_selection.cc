#include "convert/tensor_selection.h"

#include "core/error.h"

namespace hlwq {

namespace {

std::regex compile(const std::string& pattern, const char* flag) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& error) {
    fail("invalid regular expression for ", flag, ": '", pattern, "' (", error.what(), ")");
  }
}

// Kept in 16 bit by default (as the published HLWQ pipeline does): MoE routers, shared-expert gates and the recurrent
// parameters of hybrid models: A_log, dt_bias, conv1d, D, and the gated delta-net's in_proj_a /
// in_proj_b (value_heads x hidden: they set the state's decay and write strength through exp and
// sigmoid). They are small, and their errors are amplified downstream.
const std::regex& default_keep_pattern() {
  static const std::regex pattern(
      R"((^|\.)(mlp\.gate|router|shared_expert_gate|A_log|dt_bias|conv1d|D|in_proj_a|in_proj_b)(\.weight)?$)");
  return pattern;
}

}  // namespace

bool is_embedding_name(std::string_view name) {
  for (std::string_view marker : {"embed_tokens", "word_embeddings", "wte.", "tok_embeddings", "embeddings."}) {
    if (name.find(marker) != std::string_view::npos) return true;
  }
  return false;
}

bool is_outside_text_decoder(std::string_view name) {
  return name.starts_with("model.visual.") || name.starts_with("mtp.");
}

TensorSelector::TensorSelector(const TensorSelection& selection) : selection_(selection) {
  if (selection.include) include_ = compile(*selection.include, "--include");
  if (selection.exclude) exclude_ = compile(*selection.exclude, "--exclude");
}

bool TensorSelector::selects(std::string_view name, DType dtype, const std::vector<int64_t>& shape) const {
  const std::string text(name);
  if (shape.size() != 2 || !is_float(dtype)) return false;
  if (shape[0] * shape[1] < 256) return false;
  if (text.size() < 7 || text.compare(text.size() - 7, 7, ".weight") != 0) return false;
  if (is_embedding_name(text) && !selection_.quantize_embeddings) return false;
  if (std::regex_search(text, default_keep_pattern())) return false;
  if (include_ && !std::regex_search(text, *include_)) return false;
  // The vision tower and the multi-token-prediction head only when --include names them.
  if (is_outside_text_decoder(text) && !include_) return false;
  if (exclude_ && std::regex_search(text, *exclude_)) return false;
  return true;
}

}  // namespace hlwq
