// Which tensors a quantizer touches: every linear weight of at least 256 elements (2-D float
// ".weight") of the text decoder, keeping norms, biases, 1-D tensors, embeddings, small routing
// gates and the recurrent parameters of hybrid layers in their original dtype, then narrowed by the
// user's --include / --exclude regular expressions. The parts of a multimodal checkpoint outside the
// text decoder (Qwen3.5's vision tower model.visual.*, its multi-token-prediction head mtp.*) are
// quantized only when --include is given and matches them.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <string_view>

#include "io/safetensors.h"

namespace hlwq {

struct TensorSelection {
  std::optional<std::string> include;  // ECMAScript regex, searched in the name: only these
  std::optional<std::string> exclude;  // never these
  bool quantize_embeddings = false;
};

class TensorSelector {
 public:
  explicit TensorSelector(const TensorSelection& selection);  // throws hlwq::Error on a bad regex
  bool selects(std::string_view name, DType dtype, const std::vector<int64_t>& shape) const;

 private:
  TensorSelection selection_;
  std::optional<std::regex> include_;
  std::optional<std::regex> exclude_;
};

bool is_embedding_name(std::string_view name);

// model.visual.* and mtp.*: tensors of a multimodal checkpoint that the text decoder does not use.
bool is_outside_text_decoder(std::string_view name);

}  // namespace hlwq
