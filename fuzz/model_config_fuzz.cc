// libFuzzer target for config.json: any input that is JSON must give a ModelConfig or throw
// hlwq::Error; a config that parses must have sizes the engine can allocate from without overflow
// (positive, heads dividing into kv heads, products that fit in 64 bits).
// Run with scripts/fuzz.sh model_config_fuzz SECONDS (seeds: fuzz/corpus/model_config).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json config = nlohmann::json::parse(text, nullptr, false);
  if (config.is_discarded()) return 0;
  try {
    const hlwq::ModelConfig parsed = hlwq::parse_model_config(config, "fuzz/config.json");
    const bool sane = parsed.hidden_size > 0 && parsed.layers > 0 && parsed.heads > 0 && parsed.kv_heads > 0 &&
                      parsed.head_dim > 0 && parsed.intermediate_size > 0 && parsed.vocab_size > 0 &&
                      parsed.heads % parsed.kv_heads == 0;
    if (!sane) __builtin_trap();
    int64_t product = 0;
    if (__builtin_mul_overflow(parsed.vocab_size, parsed.hidden_size, &product) ||
        __builtin_mul_overflow(parsed.heads, parsed.head_dim, &product) ||
        __builtin_mul_overflow(parsed.intermediate_size, parsed.hidden_size, &product)) {
      __builtin_trap();
    }
  } catch (const hlwq::Error&) {
  }
  return 0;
}
