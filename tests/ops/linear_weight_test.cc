#include "ops/linear_weight.h"

#include <gtest/gtest.h>

#include <cmath>

#include "convert/export_model.h"
#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "ops/linear.h"

namespace hlwq {
namespace {

// The reference product of every format equals the product with the weights as read_float
// dequantizes them (the same numbers, a different path), on fresh random activations.
TEST(LinearWeight, ReferenceMatchesDequantizedProductForEveryFormat) {
  TemporaryFolder folder;
  TinyModelOptions tiny;
  tiny.hidden = 256;
  write_tiny_model(folder.path() / "dense", tiny);
  quantize_model(folder.path() / "dense", folder.path() / "hlwq", QuantizeOptions{});
  ExportOptions mlx;
  mlx.target = ExportTarget::mlx;
  mlx.dtype = DType::F32;  // F32 scales: read_float's mx.dequantize rounding is then a no-op
  export_model(folder.path() / "dense", folder.path() / "mlx", mlx);
  ExportOptions int4;
  int4.target = ExportTarget::ct_int4;
  export_model(folder.path() / "dense", folder.path() / "int4", int4);
  ThreadPool pool(1);
  uint32_t seed = 100;
  for (const char* name : {"dense", "hlwq", "mlx", "int4"}) {
    const ModelWeights model = ModelWeights::open(folder.path() / name);
    const LogicalTensor& tensor = *model.find("model.layers.1.mlp.down_proj.weight");
    const LinearWeight weight = load_linear_weight(model, tensor);
    // The INT4 folder also stores weight_shape (two int64), which a product never reads.
    const uint64_t shape_bytes = std::string(name) == "int4" ? 16 : 0;
    EXPECT_EQ(weight.stored_bytes() + shape_bytes, tensor.stored_bytes) << name;
    const int64_t batch = 3;
    const std::vector<float> x = random_normal(batch * weight.columns, seed++);
    std::vector<float> y(batch * weight.rows);
    linear_forward_reference(weight, x, batch, y);
    const std::vector<float> w = model.read_float(tensor, pool);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t r = 0; r < weight.rows; ++r) {
        double expected = 0, magnitude = 0;
        for (int64_t c = 0; c < weight.columns; ++c) {
          expected += double(w[r * weight.columns + c]) * x[b * weight.columns + c];
          magnitude += std::fabs(double(w[r * weight.columns + c]) * x[b * weight.columns + c]);
        }
        ASSERT_NEAR(y[b * weight.rows + r], expected, 1e-6 * magnitude + 1e-12) << name << " " << r;
      }
    }
  }
}

// A folder quantized with --block auto mixes blocks of 64 (the 192-wide rows) and 128: the optimized
// product of each tensor equals its reference product on fresh random activations.
TEST(LinearWeight, FittedBlockTensorsMatchTheReference) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions options;
  options.fit_block_to_rows = true;
  quantize_model(folder.path() / "dense", folder.path() / "fitted", options);
  const ModelWeights model = ModelWeights::open(folder.path() / "fitted");
  ThreadPool pool(2);
  uint32_t seed = 300;
  for (const char* name : {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"}) {
    const LinearWeight weight = load_linear_weight(model, *model.find(name));
    for (int64_t batch : {1, 5}) {
      const std::vector<float> x = random_normal(batch * weight.columns, seed++);
      std::vector<float> expected(batch * weight.rows), actual(batch * weight.rows);
      linear_forward_reference(weight, x, batch, expected);
      linear_forward(weight, x, batch, actual, pool);
      for (size_t i = 0; i < actual.size(); ++i) {
        ASSERT_NEAR(actual[i], expected[i], 1e-4 * (1 + std::fabs(expected[i]))) << name << " batch " << batch;
      }
    }
  }
}

}  // namespace
}  // namespace hlwq
