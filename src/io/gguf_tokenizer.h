// Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json)
// rebuilt from the tokenizer a GGUF file describes in its metadata, so that HF `tokenizers`
// turns text into the same ids as llama.cpp does with that GGUF.
#pragma once

#include <filesystem>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hlwq {

struct HfTokenizerFiles {
  nlohmann::json tokenizer;
  nlohmann::json tokenizer_config;
  nlohmann::json special_tokens_map;
};

// `gguf_metadata` is the metadata object GgufFile::metadata() returns (keys such as
// "tokenizer.ggml.model", "tokenizer.ggml.tokens"). Supported tokenizer.ggml.model values:
//   "gpt2"  byte-level BPE with the merges from tokenizer.ggml.merges and the text splitting of
//           tokenizer.ggml.pre (see gguf_pre_tokenizer.h for the names);
//   "llama" SentencePiece-style BPE with byte fallback; merges are rebuilt from
//           tokenizer.ggml.scores the way llama.cpp ranks them (higher score merges first).
// Every string placed in the result is valid UTF-8, so nlohmann::json::dump() cannot throw;
// a token that is not valid UTF-8 is an error rather than being silently altered.
// Throws hlwq::Error naming `source_name` for metadata it cannot convert: a missing or
// mistyped key, arrays of different lengths, an unknown model or pre-tokenizer, repeated
// tokens, merges naming tokens not in the vocabulary, special token ids out of range.
HfTokenizerFiles gguf_to_hf_tokenizer(const nlohmann::json& gguf_metadata,
                                      std::string_view source_name = "GGUF metadata");

// Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into `folder`.
void write_hf_tokenizer_files(const HfTokenizerFiles& files, const std::filesystem::path& folder);

}  // namespace hlwq
