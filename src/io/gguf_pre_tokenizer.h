// The text splitting ("pre-tokenization") llama.cpp applies before byte-level BPE, keyed by the
// GGUF name in tokenizer.ggml.pre, written as regexes that Hugging Face `tokenizers` accepts.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hlwq {

struct GgufPreTokenizer {
  // Applied in order, each one to every piece the previous ones produced; matches and the text
  // between matches both become pieces (HF Split with behavior "Isolated").
  std::vector<std::string_view> split_regexes;
  // llama.cpp looks a whole piece up in the vocabulary before merging (HF BPE `ignore_merges`).
  bool ignore_merges = false;
  // llama.cpp's add_bos default for this name when the file has no tokenizer.ggml.add_bos_token.
  bool adds_bos_by_default = false;
  // llama.cpp's clean_spaces: whether decoding removes the space before punctuation.
  bool cleans_up_spaces = true;
};

// The splitting for a tokenizer.ggml.pre value; an empty name is llama.cpp's "default".
// Returns nothing for names hlwq does not know.
std::optional<GgufPreTokenizer> find_gguf_pre_tokenizer(std::string_view name);

// "default, gpt-2, llama-bpe, ..." for error messages.
std::string supported_gguf_pre_tokenizer_names();

}  // namespace hlwq
