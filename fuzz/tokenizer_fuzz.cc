// libFuzzer target for the tokenizer. Each input is used twice:
//  - as a tokenizer.json: Tokenizer::from_json must load it or throw hlwq::Error (an object's
//    "config" member, which real files lack, stands in for tokenizer_config.json); a tokenizer that
//    loads then encodes, decodes and renders a chat prompt from the input without crashing;
//  - as text for the lossless tokenizers named in HLWQ_FUZZ_TOKENIZERS (':'-separated folders or
//    files, loaded once; byte-level BPE without a normalizer, like GPT-2 and Llama-3): valid UTF-8
//    must come back byte for byte from decode(encode(text)) and from the streaming decoder;
//    invalid UTF-8 must only not crash.
// Byte mutations almost never keep JSON valid, so inputs that are JSON are mostly mutated as JSON
// (LLVMFuzzerCustomMutator below): a value changes type or value, a key or element goes or comes.
// Run with scripts/fuzz.sh tokenizer_fuzz SECONDS (seeds: fuzz/corpus/tokenizer).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using hlwq::Tokenizer;

bool is_valid_utf8(std::string_view text) {
  for (size_t position = 0; position < text.size();) {
    const hlwq::DecodedCodePoint decoded = hlwq::decode_utf8(text, position);
    if (decoded.length == 1 && static_cast<unsigned char>(text[position]) >= 0x80) return false;
    position += decoded.length;
  }
  return true;
}

// The round-trip tokenizers, loaded on the first input; a path that does not load stops the run.
const std::vector<Tokenizer>& lossless_tokenizers() {
  static const std::vector<Tokenizer> tokenizers = [] {
    std::vector<Tokenizer> loaded;
    const char* list = std::getenv("HLWQ_FUZZ_TOKENIZERS");
    if (list == nullptr || *list == '\0') {
      std::fprintf(stderr, "tokenizer_fuzz: HLWQ_FUZZ_TOKENIZERS is not set; only from_json is fuzzed\n");
      return loaded;
    }
    const std::string_view paths = list;
    for (size_t begin = 0; begin <= paths.size();) {
      const size_t end = std::min(paths.find(':', begin), paths.size());
      const std::filesystem::path path(paths.substr(begin, end - begin));
      if (!path.empty()) {
        try {
          loaded.push_back(std::filesystem::is_directory(path) ? Tokenizer::from_folder(path)
                                                               : Tokenizer::from_file(path));
        } catch (const hlwq::Error& error) {
          std::fprintf(stderr, "tokenizer_fuzz: %s\n", error.what());
          std::abort();
        }
      }
      begin = end + 1;
    }
    return loaded;
  }();
  return tokenizers;
}

// Encodes, decodes and streams `text`; with `lossless`, valid UTF-8 must come back unchanged.
void round_trip(const Tokenizer& tokenizer, std::string_view text, bool lossless) {
  const std::vector<int32_t> ids = tokenizer.encode(text, false);
  for (const int32_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
  }
  const std::string decoded = tokenizer.decode(ids);
  hlwq::StreamingDecoder streaming(tokenizer);
  std::string streamed;
  for (const int32_t id : ids) streamed += streaming.push(id);
  streamed += streaming.flush();
  if (lossless && is_valid_utf8(text) && (decoded != text || streamed != text)) {
    std::fprintf(stderr, "tokenizer_fuzz: round trip changed the text (%zu bytes in, %zu decoded, %zu streamed)\n",
                 text.size(), decoded.size(), streamed.size());
    __builtin_trap();
  }
  (void)tokenizer.encode(text, true);
}

// The input as a tokenizer.json; whatever loads is used on the input as text too.
void load_as_tokenizer_json(std::string_view text) {
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded()) return;
  const nlohmann::json config =
      parsed.is_object() && parsed.contains("config") ? parsed["config"] : nlohmann::json();
  try {
    const Tokenizer tokenizer = Tokenizer::from_json(parsed, config, "fuzz.json");
    round_trip(tokenizer, text, false);
    const std::vector<hlwq::ChatMessage> messages = {{"system", "be brief"}, {"user", std::string(text)}};
    (void)hlwq::apply_chat_template(tokenizer, messages, true);
  } catch (const hlwq::Error&) {
  }
}

// Values and keys that tokenizer.json files are made of, for the JSON mutations.
constexpr std::string_view kWords[] = {
    "BPE", "ByteLevel", "Sequence", "Split", "Digits", "NFC", "Prepend", "Replace", "Strip", "Isolated",
    "TemplateProcessing", "SpecialToken", "model", "vocab", "merges", "type", "added_tokens", "normalizer",
    "normalizers", "pre_tokenizer", "pretokenizers", "decoder", "decoders", "post_processor", "single", "id",
    "content", "lstrip", "rstrip", "single_word", "pattern", "String", "Regex", "behavior", "invert", "prepend",
    "start", "unk_token", "byte_fallback", "fuse_unk", "ignore_merges", "add_prefix_space", "use_regex",
    "individual_digits", "config", "bos_token", "eos_token", "add_bos_token", "chat_template", "name", "default",
    "template", "", "a", "a b", "\xe2\x96\x81", "<0x41>", "<|im_start|>", "<|start_header_id|>", "<|eot_id|>",
    "\\p{N}", "Cutting Knowledge Date: ", "</think>"};
constexpr int64_t kNumbers[] = {0, 1, 2, -1, 255, 256, 65535, 1 << 20, (int64_t{1} << 30) - 1, int64_t{1} << 31,
                                int64_t{1} << 40, INT64_MAX};

nlohmann::json random_value(std::minstd_rand& random) {
  switch (random() % 8) {
    case 0: return nullptr;
    case 1: return random() % 2 == 0;
    case 2: return kNumbers[random() % std::size(kNumbers)];
    case 3: return 1.5;
    case 4: return nlohmann::json::object();
    case 5: return nlohmann::json::array();
    default: return std::string(kWords[random() % std::size(kWords)]);
  }
}

// Every value in the document, containers included, in document order.
void collect_values(nlohmann::json& value, std::vector<nlohmann::json*>& values) {
  values.push_back(&value);
  if (value.is_structured()) {
    for (nlohmann::json& child : value) collect_values(child, values);
  }
}

// One change at a random place: replace a value, drop or add an object key, drop or copy an
// array element.
void mutate_json(nlohmann::json& document, std::minstd_rand& random) {
  std::vector<nlohmann::json*> values;
  collect_values(document, values);
  nlohmann::json& target = *values[random() % values.size()];
  const uint32_t choice = random() % 4;
  if (choice == 1 && target.is_object() && !target.empty()) {
    auto victim = target.begin();
    std::advance(victim, static_cast<std::ptrdiff_t>(random() % target.size()));
    target.erase(victim);
  } else if (choice == 1 && target.is_array() && !target.empty()) {
    target.erase(random() % target.size());
  } else if (choice == 2 && target.is_object()) {
    target[std::string(kWords[random() % std::size(kWords)])] = random_value(random);
  } else if (choice == 2 && target.is_array() && !target.empty()) {
    target.push_back(nlohmann::json(target[random() % target.size()]));
  } else if (choice == 3 && target.is_string()) {
    target = target.get<std::string>() + std::string(kWords[random() % std::size(kWords)]);
  } else {
    target = random_value(random);
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

// JSON inputs get a JSON mutation three times in four; everything else libFuzzer's own.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand random(seed);
  nlohmann::json document = nlohmann::json::parse(data, data + size, nullptr, false);
  if (document.is_discarded() || !document.is_structured() || random() % 4 == 0) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  mutate_json(document, random);
  const std::string mutated = document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (mutated.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, mutated.data(), mutated.size());
  return mutated.size();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  load_as_tokenizer_json(text);
  for (const Tokenizer& tokenizer : lossless_tokenizers()) round_trip(tokenizer, text, true);
  return 0;
}
