// Which tensors a quantizer touches: every linear weight of at least 256 elements (2-D float
// ".weight"), keeping norms, biases, 1-D tensors, embeddings and small routing gates in their
// original dtype, then narrowed by the user's --include / --exclude regular expressions.
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

}  // namespace hlwq
