#include "convert/export_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "convert/model_weights.h"
#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "core/error.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  TemporaryFolder folder;
  fs::path dense = folder.path() / "dense";
  fs::path hlwq = folder.path() / "hlwq";
  Fixture() {
    TinyModelOptions tiny;
    tiny.hidden = 256;  // divisible by 64 and 128, so MLX and INT4 quantize every linear weight
    tiny.intermediate = 384;
    write_tiny_model(dense, tiny);
    quantize_model(dense, hlwq, QuantizeOptions{});
  }
};

double relative_error(const std::vector<float>& values, const std::vector<float>& reference) {
  double error = 0, energy = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    error += (values[i] - reference[i]) * double(values[i] - reference[i]);
    energy += reference[i] * double(reference[i]);
  }
  return error / energy;
}

TEST(ExportModel, Bf16ExportEqualsHlwqDequantizationRounded) {
  Fixture fixture;
  const fs::path out = fixture.folder.path() / "bf16";
  export_model(fixture.hlwq, out, ExportOptions{});
  const ModelWeights hlwq = ModelWeights::open(fixture.hlwq);
  const ModelWeights exported = ModelWeights::open(out);
  const ModelWeights dense = ModelWeights::open(fixture.dense);
  ThreadPool pool(2);
  EXPECT_FALSE(exported.folder().config().contains("quantization_config"));
  ASSERT_EQ(exported.tensors().size(), dense.tensors().size());
  for (const LogicalTensor& tensor : dense.tensors()) {
    const LogicalTensor* out_tensor = exported.find(tensor.name);
    ASSERT_NE(out_tensor, nullptr) << tensor.name;
    EXPECT_EQ(out_tensor->shape, tensor.shape);
    EXPECT_EQ(out_tensor->dtype, DType::BF16);
    const std::vector<float> expected = hlwq.read_float(*hlwq.find(tensor.name), pool);
    const std::vector<float> got = exported.read_float(*out_tensor, pool);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(expected[i]))) << tensor.name << " " << i;
  }
}

TEST(ExportModel, MlxExportFromDenseAndFromHlwq) {
  Fixture fixture;
  ThreadPool pool(2);
  const ModelWeights dense = ModelWeights::open(fixture.dense);
  for (const fs::path& source : {fixture.dense, fixture.hlwq}) {
    const fs::path out = fixture.folder.path() / ("mlx-" + source.filename().string());
    ExportOptions options;
    options.target = ExportTarget::mlx;
    const ExportSummary summary = export_model(source, out, options);
    EXPECT_EQ(summary.quantized_tensors, 16u);  // 14 linear + lm_head + embeddings
    const ModelWeights mlx = ModelWeights::open(out);
    EXPECT_EQ(mlx.folder().config()["quantization"]["bits"], 4);
    EXPECT_EQ(mlx.folder().config()["quantization"]["group_size"], 64);
    const LogicalTensor* up = mlx.find("model.layers.0.mlp.up_proj.weight");
    ASSERT_NE(up, nullptr);
    EXPECT_EQ(up->format, WeightFormat::mlx_affine);
    EXPECT_NEAR(up->bits_per_weight(), 4.5, 1e-9);  // 4 bits + bf16 scale and bias per 64
    // 4-bit affine on Gaussian weights: relative MSE near 1e-2 (about 20 dB).
    const double error = relative_error(mlx.read_float(*up, pool), dense.read_float(*dense.find(up->name), pool));
    EXPECT_LT(error, 0.02);
    EXPECT_GT(error, 0.002);
  }
}

TEST(ExportModel, CompressedTensorsInt4) {
  Fixture fixture;
  ThreadPool pool(2);
  const fs::path out = fixture.folder.path() / "ct";
  ExportOptions options;
  options.target = ExportTarget::ct_int4;
  const ExportSummary summary = export_model(fixture.dense, out, options);
  EXPECT_EQ(summary.quantized_tensors, 14u);  // linear layers; lm_head and embeddings stay dense
  const ModelWeights int4 = ModelWeights::open(out);
  const auto& config = int4.folder().config()["quantization_config"];
  EXPECT_EQ(config["quant_method"], "compressed-tensors");
  EXPECT_EQ(config["config_groups"]["group_0"]["weights"]["group_size"], 128);
  const LogicalTensor* down = int4.find("model.layers.1.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->format, WeightFormat::ct_int4);
  const ModelWeights dense = ModelWeights::open(fixture.dense);
  const double error = relative_error(int4.read_float(*down, pool), dense.read_float(*dense.find(down->name), pool));
  EXPECT_LT(error, 0.03);
  EXPECT_EQ(int4.find("lm_head.weight")->format, WeightFormat::dense);
}

TEST(ExportModel, BadArgumentsAreErrors) {
  Fixture fixture;
  ExportOptions options;
  options.target = ExportTarget::mlx;
  options.bits = 7;
  EXPECT_THROW(export_model(fixture.dense, fixture.folder.path() / "x", options), Error);
  options.bits = 4;
  options.group_size = 48;
  EXPECT_THROW(export_model(fixture.dense, fixture.folder.path() / "x", options), Error);
  EXPECT_THROW(export_model(fixture.folder.path() / "missing", fixture.folder.path() / "x", ExportOptions{}), Error);
  EXPECT_FALSE(fs::exists(fixture.folder.path() / "x"));
}

}  // namespace
}  // namespace hlwq
