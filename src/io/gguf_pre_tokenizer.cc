// Pre-tokenizer regexes per tokenizer.ggml.pre name, as llama.cpp (src/llama-vocab.cpp) defines
// them. Where llama.cpp rewrote a model's original regex (case-insensitive groups spelled out,
// Unicode classes emulated with lookaheads), the rewritten form is kept: the goal is llama.cpp's
// split, even where it differs from the model's own tokenizer.json.
#include "io/gguf_pre_tokenizer.h"

#include <algorithm>

namespace hlwq {
namespace {

// GPT-2's split. llama.cpp omits the final `|\s+`; with isolated splitting the text it would
// match (one whitespace character before a non-space) becomes a piece of its own either way.
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen35 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kMiniCpm5 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kSeedCoder =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kBailingMoe =
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
constexpr std::string_view kUfakzeka =
    R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Upper/lower-case letter classes as llama.cpp emulates them: any letter other than a-z counts
// as "upper", any letter other than A-Z as "lower".
constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kDigit = R"(\p{N})";
constexpr std::string_view kDigitsUpTo3 = R"(\p{N}{1,3})";
constexpr std::string_view kLineBreak = R"([\r\n])";
constexpr std::string_view kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";
constexpr std::string_view kDeepseekLatin =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943]+";
constexpr std::string_view kDeepseekPunctuation =
    "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
constexpr std::string_view kDeepseek3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kDeepseek3Cjk = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
constexpr std::string_view kPoro =
    " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+";

struct Family {
  std::vector<std::string_view> names;
  GgufPreTokenizer splitting;
};

// Verified to give llama.cpp's ids on llama.cpp's own tokenizer suite (models/ggml-vocab-*.gguf
// with their .inp/.out files; LlamaCppVocabSuite test): gpt-2, mpt, llama-bpe, qwen2, qwen35,
// starcoder, refact, command-r, falcon, deepseek-coder, deepseek-llm; smollm with the demo model
// (GgufTokenizerDemo). The other names share one of those regexes, or (default, minicpm5,
// deepseek-v3 and its kin, poro-chat, bloom, viking, tekken, gpt-4o and its kin, seed-coder,
// bailingmoe, ufakzeka) are transcribed from llama.cpp without a vocabulary to check them on.
const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {{"default"},
       {{R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, false, false, true}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano"},
       {{kLlama3}, true, true, true}},
      {{"dbrx", "smaug-bpe", "chatglm-bpe"}, {{kLlama3}, false, false, true}},
      {{"glm4", "glm5"}, {{kLlama3}, true, false, true}},
      {{"minicpm5"}, {{kDigitsUpTo3, kMiniCpm5}, true, false, true}},
      {{"deepseek-llm"},
       {{kLineBreak, kDeepseekLatin, kDeepseekPunctuation, R"(\s+$)", kCjk, R"(\p{N}+)"},
        false, false, false}},
      {{"deepseek-coder"},
       {{kLineBreak, R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, kDigit}, false, false, false}},
      {{"deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"},
       {{kDigitsUpTo3, kDeepseek3Cjk, kDeepseek3Main}, false, false, false}},
      {{"falcon"},
       {{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false, false, true}},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "mpt", "olmo", "jais", "exaone4"},
       {{kGpt2}, false, false, true}},
      {{"trillion", "granite-docling"}, {{kGpt2}, false, false, false}},
      {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"},
       {{kDigit, kGpt2}, false, false, true}},
      {{"command-r", "smollm"}, {{kDigit, kGpt2}, false, false, false}},
      {{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan",
        "solar-open", "grok-2"},
       {{kQwen2}, false, false, false}},
      {{"qwen35"}, {{kQwen35}, false, false, false}},
      {{"poro-chat"}, {{kPoro}, false, false, false}},
      {{"bloom", "gpt3-finnish"}, {{kPoro}, false, false, true}},
      {{"viking"}, {{kPoro, kDigit}, false, false, false}},
      {{"tekken"}, {{kTekken}, true, true, false}},
      {{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, {{kGpt4o}, false, false, false}},
      {{"seed-coder"}, {{kSeedCoder}, false, false, false}},
      {{"bailingmoe", "bailingmoe2", "llada-moe"}, {{kBailingMoe}, false, false, false}},
      {{"ufakzeka"}, {{kUfakzeka}, false, false, false}},
  };
  return table;
}

}  // namespace

std::optional<GgufPreTokenizer> find_gguf_pre_tokenizer(std::string_view name) {
  if (name.empty()) name = "default";
  for (const Family& family : families()) {
    if (std::find(family.names.begin(), family.names.end(), name) != family.names.end()) {
      return family.splitting;
    }
  }
  return std::nullopt;
}

std::string supported_gguf_pre_tokenizer_names() {
  std::string names;
  for (const Family& family : families()) {
    for (std::string_view name : family.names) {
      if (!names.empty()) names += ", ";
      names += name;
    }
  }
  return names;
}

}  // namespace hlwq
