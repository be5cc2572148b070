// Cross-checks `export --to mlx` with the real mlx / mlx_lm packages through
// scripts/check_mlx_export.py: mlx_lm must load the folder, and mx.dequantize must give exactly
// the weights hlwq's own dequantization gives. Skipped (with the reason) without python3 + mlx_lm.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "test_util.h"

namespace hlwq {
namespace {

TEST(MlxCrossCheck, MlxLmLoadsAndDequantizesIdentically) {
  if (!python_has("mlx.core, mlx_lm")) GTEST_SKIP() << "python3 with mlx and mlx_lm not available";
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.hidden = 192;  // 192 % 128 != 0: at g128 only down_proj (in = 256) is quantized
  write_tiny_model(folder.path() / "dense", tiny);
  quantize_model(folder.path() / "dense", folder.path() / "hlwq", QuantizeOptions{});
  for (const auto& [bits, group] : std::vector<std::pair<int, int>>{{4, 64}, {3, 32}, {6, 64}, {8, 128}, {2, 64}}) {
    const auto out = folder.path() / ("mlx" + std::to_string(bits) + "g" + std::to_string(group));
    ExportOptions options;
    options.target = ExportTarget::mlx;
    options.bits = bits;
    options.group_size = group;
    export_model(folder.path() / "hlwq", out, options);
    const std::string command = std::string("python3 ") + HLWQ_SOURCE_DIR + "/scripts/check_mlx_export.py " +
                                out.string() + " --hlwq " + HLWQ_BINARY + " > " + (out.string() + ".log") + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream log(out.string() + ".log");
    const std::string text((std::istreambuf_iterator<char>(log)), {});
    EXPECT_EQ(status, 0) << "bits " << bits << " group " << group << ":\n" << text;
    EXPECT_NE(text.find(", 0 with differences"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace hlwq
