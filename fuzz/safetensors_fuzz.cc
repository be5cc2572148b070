// libFuzzer target: any byte string given to the safetensors header parser must either parse
// or throw hlwq::Error; anything else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const hlwq::SafetensorsHeader header = hlwq::parse_safetensors_header(bytes, "fuzz");
    // Touch what a reader would use, so an inconsistent result shows up as a report.
    for (const hlwq::TensorInfo& tensor : header.tensors) {
      if (header.data_area_begin + tensor.data_end > size) __builtin_trap();
      if (tensor.element_count() * hlwq::dtype_size(tensor.dtype) != tensor.byte_size())
        __builtin_trap();
    }
  } catch (const hlwq::Error&) {
  }
  return 0;
}
