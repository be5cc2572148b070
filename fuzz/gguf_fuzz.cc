// libFuzzer target for the GGUF reader: any input must parse or throw hlwq::Error, and every
// tensor of a supported type in a file that parses must dequantize or throw hlwq::Error.
// Run with scripts/fuzz.sh gguf_fuzz SECONDS (seeds: tests/fixtures/gguf).
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const hlwq::GgufContents contents = hlwq::parse_gguf(bytes, "fuzz.gguf");
    for (const hlwq::GgufTensorInfo& tensor : contents.tensors) {
      if (!hlwq::gguf_type_is_supported(static_cast<hlwq::GgufTensorType>(tensor.type))) continue;
      try {
        (void)hlwq::dequantize_gguf_tensor(contents, tensor, bytes, "fuzz.gguf");
      } catch (const hlwq::Error&) {
      }
    }
    (void)hlwq::dump_gguf_metadata(contents.metadata);
  } catch (const hlwq::Error&) {
  }
  return 0;
}
