// A model folder in another storage format, made the way the engine tests make them: HLWQ codes
// (`hlwq quantize`, block 64) or an export (`hlwq export --to mlx|ct-int4`, group 32), two threads.
#pragma once

#include <filesystem>
#include <string>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "core/error.h"

namespace hlwq {

// format: "hlwq", "mlx" or "ct-int4"; bits: the code width or the affine bits.
inline void write_format_folder(const std::filesystem::path& dense, const std::string& format, int bits,
                                const std::filesystem::path& output) {
  if (format == "hlwq") {
    QuantizeOptions options;
    options.params.bits = bits;
    options.params.block = 64;
    options.threads = 2;
    quantize_model(dense, output, options);
    return;
  }
  if (format != "mlx" && format != "ct-int4") throw Error("write_format_folder: unknown format '" + format + "'");
  ExportOptions options;
  options.threads = 2;
  options.group_size = 32;
  options.bits = bits;
  options.target = format == "mlx" ? ExportTarget::mlx : ExportTarget::ct_int4;
  export_model(dense, output, options);
}

}  // namespace hlwq
