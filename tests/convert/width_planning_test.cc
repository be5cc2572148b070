// --target-bpw: the sampled error measurement, the plan's budget, and a mixed-width folder that
// reads back as each tensor's own codec wrote it.
#include "convert/width_planning.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "convert/model_weights.h"
#include "convert/quantize_model.h"
#include "convert/tiny_model.h"
#include "core/thread_pool.h"
#include "test_util.h"

namespace hlwq {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(WidthPlanning, SampledErrorsFallAboutFourTimesABitAndEqualTheWholeMatrixWhenAllRowsAreSampled) {
  ThreadPool pool(2);
  const int64_t rows = 40, columns = 256;
  const std::vector<float> weights = random_normal(rows * columns, std::random_device{}(), 0.02f);
  const std::vector<int> widths = {2, 3, 4, 5, 6, 7, 8};
  HlwqParams params;
  params.block = 128;
  const std::vector<double> errors = sampled_relative_errors(
      DType::F32, std::as_bytes(std::span<const float>(weights)), rows, columns, params, widths, 1000, pool);
  ASSERT_EQ(errors.size(), widths.size());
  for (size_t w = 0; w + 1 < widths.size(); ++w) {
    // Lloyd-Max on Gaussian coordinates: 4.4x at 2->3 bits falling towards 4x (6.02 dB a bit).
    const double ratio = errors[w] / errors[w + 1];
    EXPECT_GT(ratio, 3.0) << widths[w] << " -> " << widths[w + 1];
    EXPECT_LT(ratio, 5.5) << widths[w] << " -> " << widths[w + 1];
  }
  // All 40 rows sampled: the error is the whole matrix's, by the codec's own round trip.
  params.bits = 4;
  const HlwqCodec codec(params, columns);
  std::vector<uint8_t> codes(codec.layout().code_bytes * rows);
  std::vector<uint16_t> norms(codec.layout().blocks * rows);
  std::vector<float> decoded(weights.size());
  codec.quantize_matrix(DType::F32, std::as_bytes(std::span<const float>(weights)), rows, codes, norms, pool);
  codec.dequantize_matrix(codes, norms, rows, decoded, pool);
  double error = 0, energy = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    error += (weights[i] - decoded[i]) * double(weights[i] - decoded[i]);
    energy += weights[i] * double(weights[i]);
  }
  EXPECT_NEAR(errors[2] / (error / energy), 1.0, 1e-9);
  // A sample of 10 rows measures nearly the same (the weights are alike).
  const std::vector<double> sampled = sampled_relative_errors(
      DType::F32, std::as_bytes(std::span<const float>(weights)), rows, columns, params, widths, 10, pool);
  EXPECT_NEAR(sampled[2] / errors[2], 1.0, 0.15);
}

TEST(WidthPlanning, ATargetBetweenTwoWidthsMixesThemWithinTheBudgetAndReadsBack) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");  // 14 linear tensors of 49k-65k weights
  QuantizeOptions options;
  options.threads = 2;
  options.fit_block_to_rows = true;
  options.target_bits_per_weight = 4.6;
  const QuantizeSummary summary = quantize_model(folder.path() / "dense", folder.path() / "mixed", options);
  const double achieved = 8.0 * summary.quantized_bytes_out / summary.quantized_elements;
  EXPECT_LE(achieved, 4.6);
  EXPECT_GT(achieved, 4.6 - 0.15);  // one tensor's step short at most: 49k bits of 0.5M weights
  EXPECT_GE(summary.tensors_per_width.size(), 2u);
  const json config = ModelFolder::open(folder.path() / "mixed").config()["quantization_config"];
  EXPECT_EQ(config["target_bits_per_weight"], 4.6);
  const ModelWeights model = ModelWeights::open(folder.path() / "mixed");
  const ModelWeights dense = ModelWeights::open(folder.path() / "dense");
  ThreadPool pool(2);
  std::set<int> widths;
  for (const LogicalTensor& tensor : model.tensors()) {
    if (!tensor.quantized()) continue;
    EXPECT_EQ(config["quantized_tensors"][tensor.name]["bits"], tensor.bits) << tensor.name;
    widths.insert(tensor.bits);
    EXPECT_EQ(model.hlwq_params_of(tensor).bits, tensor.bits);
    // Each tensor holds what a codec of its own width writes for the dense weights.
    const std::vector<float> weights = dense.read_float(*dense.find(tensor.name), pool);
    const HlwqCodec codec(model.hlwq_params_of(tensor), tensor.shape[1]);
    std::vector<uint8_t> codes(codec.layout().code_bytes * tensor.shape[0]);
    std::vector<uint16_t> norms(codec.layout().blocks * tensor.shape[0]);
    std::vector<float> expected(weights.size());
    codec.quantize_matrix(DType::F32, std::as_bytes(std::span<const float>(weights)), tensor.shape[0], codes, norms,
                          pool);
    codec.dequantize_matrix(codes, norms, tensor.shape[0], expected, pool);
    EXPECT_EQ(model.read_float(tensor, pool), expected) << tensor.name;
  }
  EXPECT_EQ(widths, (std::set<int>{4, 5}));
}

TEST(WidthPlanning, TheMixLeavesLessErrorThanTheLowerUniformWidth) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  ThreadPool pool(2);
  const ModelFolder dense = ModelFolder::open(folder.path() / "dense");
  std::vector<WidthPlanTensor> tensors;
  for (const std::string& name : dense.tensor_names()) {
    if (name.find("_proj.weight") == std::string::npos) continue;
    HlwqParams params;
    params.block = fitted_block(dense.info(name).shape[1], 128);
    tensors.push_back({name, params});
  }
  const WidthPlan plan = plan_code_widths(dense, tensors, 4.6, pool);
  EXPECT_LE(plan.bits_per_weight(), 4.6);
  // Every tensor's relative error at its planned width, weighted by its weights, against all at 4 bits.
  double planned = 0, uniform = 0;
  for (const WidthPlanTensor& tensor : tensors) {
    const TensorInfo& info = dense.info(tensor.name);
    const std::vector<int> widths = {4, plan.bits.at(tensor.name)};
    const std::vector<double> errors = sampled_relative_errors(info.dtype, dense.data(tensor.name), info.shape[0],
                                                               info.shape[1], tensor.params, widths, 256, pool);
    uniform += errors[0] * static_cast<double>(info.element_count());
    planned += errors[1] * static_cast<double>(info.element_count());
  }
  EXPECT_LT(planned, 0.85 * uniform);
}

TEST(WidthPlanning, ATargetOutsideTwoToEightBitCodesIsAClearErrorAndWritesNothing) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  QuantizeOptions options;
  options.threads = 2;
  options.fit_block_to_rows = true;  // no padded blocks: 8-bit codes store 8.125 to 8.25 bits per weight
  options.target_bits_per_weight = 1.5;
  const std::string message =
      error_message([&] { quantize_model(folder.path() / "dense", folder.path() / "out", options); });
  EXPECT_NE(message.find("--target-bpw 1.5 is outside what these tensors can store: 2."), std::string::npos)
      << message;
  EXPECT_FALSE(fs::exists(folder.path() / "out"));
  options.target_bits_per_weight = 9;
  const std::string above =
      error_message([&] { quantize_model(folder.path() / "dense", folder.path() / "out", options); });
  EXPECT_NE(above.find("(8-bit codes) bits per weight"), std::string::npos) << above;
  EXPECT_FALSE(fs::exists(folder.path() / "out"));
}

TEST(WidthPlanning, TheCommandTakesTargetBpwAndRefusesItBesideBits) {
  TemporaryFolder folder;
  write_tiny_model(folder.path() / "dense");
  const std::string dense = (folder.path() / "dense").string(), out = (folder.path() / "out").string();
  CommandResult result = run_hlwq("quantize -m " + dense + " -o " + out + " --bits 4 --target-bpw 4.5");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("--bits excludes --target-bpw"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(out));
  result = run_hlwq("quantize -m " + dense + " -o " + out + " --target-bpw 4.6 --threads 2");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("to HLWQ Q4 x "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(", Q5 x "), std::string::npos) << result.output;
}

}  // namespace
}  // namespace hlwq
