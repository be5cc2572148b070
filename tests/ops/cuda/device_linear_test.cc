// The GPU linear layers (ops/cuda/device_linear.h) against the CPU's linear_forward_reference for
// every format, code width / bits, block / group and a spread of batches (decode GEMV 1..16,
// prefill 17+ in both precisions), on fresh random weights and activations; gather_rows against
// dequantize_linear_row; and the workspace's promise that a repeated decode call can be captured in
// a CUDA graph. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/thread_pool.h"
#include "ops/linear_weight.h"
#include "ops/linear_weight_builders.h"
#include "test_util.h"

#ifdef HLWQ_HAVE_CUDA
#include <cuda_runtime.h>

#include "ops/cuda/device_buffer.h"
#include "ops/cuda/device_info.h"
#include "ops/cuda/device_linear.h"
#include "ops/cuda/device_test_util.h"
#endif

namespace hlwq {
namespace {

#ifdef HLWQ_HAVE_CUDA

using cuda::DeviceBuffer;
using cuda::DeviceLinear;
using cuda::LinearWorkspace;
using cuda::PrefillPrecision;
using cuda::kernels::GemvVersion;

// Worst errors seen by the running test, printed when it ends (the bounds say pass/fail; these
// say by how much).
struct WorstErrors {
  double float_path = 0, pair_path = 0, bf16_prefill = 0;
  int64_t gather_ulps = 0;
};
WorstErrors worst;

class DeviceLinearTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    worst = {};
  }
  void TearDown() override {
    std::printf("    worst relative error: float paths %.2e, fp16 pair GEMV %.2e, BF16 prefill %.2e; gather %lld ulp\n",
                worst.float_path, worst.pair_path, worst.bf16_prefill, static_cast<long long>(worst.gather_ulps));
  }
};

// Fills a device buffer with NaNs, so a kernel that skips an output cannot pass.
void poison(DeviceBuffer& buffer) {
  cuda::check_cuda(cudaMemset(buffer.data(), 0xff, buffer.size() * sizeof(float)), "cudaMemset");
}

ThreadPool& pool() {
  static ThreadPool shared(0);
  return shared;
}

// Random normal weights scaled like a real layer (std 0.02) and quantized to the format.
std::vector<float> layer_weights(int64_t rows, int64_t columns, uint32_t seed) {
  return random_normal(static_cast<size_t>(rows * columns), seed, 0.02f);
}

LinearWeight hlwq_weight(const HlwqParams& params, int64_t rows, int64_t columns, uint32_t seed) {
  auto codec = std::make_shared<const HlwqCodec>(params, columns);
  return make_hlwq_linear_weight(codec, layer_weights(rows, columns, seed), rows, pool());
}

std::string describe(const LinearWeight& weight) {
  std::string text = std::to_string(weight.rows) + "x" + std::to_string(weight.columns) + " ";
  switch (weight.format) {
    case LinearFormat::dense: return text + "dense " + std::string(dtype_name(weight.dtype));
    case LinearFormat::hlwq: {
      const HlwqParams& p = weight.codec->params();
      return text + "HLWQ Q" + std::to_string(p.bits) + " d" + std::to_string(p.block) +
             (p.rotation == Rotation::none ? " no-rotation" : p.sign_seed ? " signs" : " no-signs") +
             (p.codebook == CodebookKind::uniform ? " uniform" : "");
    }
    case LinearFormat::mlx_affine:
      return text + "MLX " + std::to_string(weight.affine.bits) + "-bit g" + std::to_string(weight.affine.group_size) +
             " " + std::string(dtype_name(weight.dtype));
    case LinearFormat::ct_int4:
      return text + "INT4 g" + std::to_string(weight.int4.group_size) + " " + std::string(dtype_name(weight.dtype));
    case LinearFormat::trellis: return text + "trellis";  // refused by the GPU backend
  }
  return text;
}

// GPU product of a fresh random x against the CPU reference; returns the relative error.
double product_error(const LinearWeight& weight, int64_t batch, PrefillPrecision precision, uint32_t seed,
                     GemvVersion version = GemvVersion::best_measured) {
  const std::vector<float> x = random_normal(static_cast<size_t>(batch * weight.columns), seed, 1.0f);
  std::vector<float> expected(static_cast<size_t>(batch * weight.rows));
  linear_forward_reference(weight, x, batch, expected);
  const DeviceLinear device_weight(weight);
  LinearWorkspace workspace;
  workspace.set_prefill_precision(precision);
  workspace.set_gemv_version(version);
  const DeviceBuffer x_device = on_device(x);
  DeviceBuffer y_device(expected.size());
  poison(y_device);
  cuda::linear_forward(device_weight, x_device.data(), batch, y_device.data(), workspace, nullptr);
  cuda::check_cuda(cudaDeviceSynchronize(), "synchronize");
  return relative_error(on_host(y_device), expected);
}

// Float32 paths (GEMV, FP32 prefill) sum in another order than the reference's double: a few float
// roundings per output. BF16 prefill rounds weights and x to 8-bit mantissas.
constexpr double kFloatBound = 1e-5;
constexpr double kBf16Bound = 2e-2;
// GEMV version 4 (HLWQ Q4 with blocks >= 128; 4-bit MLX and INT4 with groups of 64k and columns of
// 128k) rounds x (and HLWQ's codebook) to fp16 (relative 2^-11 each, random over the terms) and sums
// the exact products in fp32.
constexpr double kPairBound = 2e-3;

bool takes_pairs(const LinearWeight& weight, int64_t batch) {
  if (batch > 16) return false;
  switch (weight.format) {
    case LinearFormat::hlwq: return weight.codec->params().bits == 4 && weight.codec->params().block >= 128;
    case LinearFormat::mlx_affine:
      return weight.affine.bits == 4 && weight.affine.group_size % 64 == 0 && weight.columns % 128 == 0;
    case LinearFormat::ct_int4: return weight.int4.group_size % 64 == 0 && weight.columns % 128 == 0;
    case LinearFormat::dense:
    case LinearFormat::trellis: return false;
  }
  return false;
}

// best_measured runs version 4 at batches 2..16 where it applies.
bool runs_pairs(const LinearWeight& weight, int64_t batch, GemvVersion version) {
  const bool by_default = version == GemvVersion::best_measured && batch >= 2;
  return (version == GemvVersion::tensor_core_pairs || by_default) && takes_pairs(weight, batch);
}

double gemv_bound(const LinearWeight& weight, int64_t batch, GemvVersion version) {
  return runs_pairs(weight, batch, version) ? kPairBound : kFloatBound;
}

// The product with each of `versions` forced, within its version's bound.
void expect_versions(const LinearWeight& weight, int64_t batch, const std::vector<GemvVersion>& versions,
                     uint32_t seed) {
  for (const GemvVersion version : versions) {
    const double error = product_error(weight, batch, PrefillPrecision::fp32, seed, version);
    EXPECT_LE(error, gemv_bound(weight, batch, version))
        << describe(weight) << " batch " << batch << " GEMV version " << static_cast<int>(version);
    double& worst_of_path = runs_pairs(weight, batch, version) ? worst.pair_path : worst.float_path;
    worst_of_path = std::max(worst_of_path, error);
  }
}

// Version 4 forced at each batch (it must take them all), within kPairBound.
void expect_pair_gemv(const LinearWeight& weight, std::initializer_list<int64_t> batches, uint32_t seed) {
  for (const int64_t batch : batches) {
    ASSERT_TRUE(takes_pairs(weight, batch)) << describe(weight) << " batch " << batch;
    expect_versions(weight, batch, {GemvVersion::tensor_core_pairs}, seed + static_cast<uint32_t>(batch));
  }
}

void expect_batches(const LinearWeight& weight, std::initializer_list<int64_t> batches, uint32_t seed) {
  for (const int64_t batch : batches) {
    const double error = product_error(weight, batch, PrefillPrecision::fp32, seed + static_cast<uint32_t>(batch));
    EXPECT_LE(error, gemv_bound(weight, batch, GemvVersion::best_measured)) << describe(weight) << " batch " << batch;
    double& worst_of_path = runs_pairs(weight, batch, GemvVersion::best_measured) ? worst.pair_path : worst.float_path;
    worst_of_path = std::max(worst_of_path, error);
    if (batch <= 16) {
      // Every decode kernel version that takes the batch (HLWQ's version 3 takes batch 1 only and
      // version 2 up to 4: past that they would run version 1 again; the other formats have 3 and 4).
      std::vector<GemvVersion> versions = {GemvVersion::tensor_core_pairs};
      if (weight.format == LinearFormat::hlwq && batch <= 4) {
        versions.insert(versions.end(), {GemvVersion::wide_units, GemvVersion::coalesced_words});
      }
      if (batch == 1) versions.push_back(GemvVersion::column_stationary);
      const uint32_t version_seed = weight.format == LinearFormat::hlwq ? seed + static_cast<uint32_t>(batch) : seed + 1;
      expect_versions(weight, batch, versions, version_seed);
    } else {
      const double bf16_error =
          product_error(weight, batch, PrefillPrecision::bf16_tensor_cores, seed + static_cast<uint32_t>(batch));
      EXPECT_LE(bf16_error, kBf16Bound) << describe(weight) << " batch " << batch << " BF16 prefill";
      worst.bf16_prefill = std::max(worst.bf16_prefill, bf16_error);
    }
  }
}

TEST_F(DeviceLinearTest, HlwqEveryWidthAndBlockMatchesTheReference) {
  // Blocks 32, 64, 128 and 1024 reach every unit size of the GEMV (4, 8 and 16 bytes); columns that
  // are not a multiple of the block exercise the padding, 37 rows a partial last CTA.
  const int64_t extra_batches[] = {2, 4, 8, 13};
  int index = 0;
  for (int bits = 2; bits <= 8; ++bits) {
    for (const int block : {32, 64, 128, 1024}) {
      HlwqParams params;
      params.bits = bits;
      params.block = block;
      params.sign_seed = 1234u + bits;
      const int64_t columns = block == 1024 ? 2 * 1024 - 24 : 3 * block - 5;
      const LinearWeight weight = hlwq_weight(params, 37, columns, 100 + index);
      const int64_t extra = extra_batches[index++ % 4];
      if (block == 64 || block == 128) {
        expect_batches(weight, {1, 3, extra, 16, 17}, 1000 + index);
      } else {
        expect_batches(weight, {1, extra, 16}, 1000 + index);
      }
    }
  }
}

TEST_F(DeviceLinearTest, HlwqVariantsMatchTheReference) {
  // Rotation none, the uniform (absmax) codebook, Hadamard without signs.
  for (const int bits : {3, 4, 5, 8}) {
    HlwqParams none;
    none.bits = bits;
    none.block = 64;
    none.rotation = Rotation::none;
    expect_batches(hlwq_weight(none, 29, 200, 7 + bits), {1, 5, 64}, 70);
    HlwqParams uniform;
    uniform.bits = bits;
    uniform.block = 128;
    uniform.codebook = CodebookKind::uniform;
    uniform.sign_seed = 5u;
    expect_batches(hlwq_weight(uniform, 29, 256, 17 + bits), {1, 16, 17}, 80);
    HlwqParams unsigned_hadamard;
    unsigned_hadamard.bits = bits;
    unsigned_hadamard.block = 256;
    expect_batches(hlwq_weight(unsigned_hadamard, 29, 512, 27 + bits), {2, 13}, 90);
  }
}

TEST_F(DeviceLinearTest, MlxAffineEveryBitsGroupAndDtypeMatchesTheReference) {
  const DType dtypes[] = {DType::BF16, DType::F16, DType::F32};
  int index = 0;
  for (const int bits : {2, 3, 4, 5, 6, 8}) {
    for (const int group : {32, 64, 128}) {
      const DType dtype = dtypes[index % 3];
      const LinearWeight weight =
          make_mlx_affine_linear_weight(AffineParams{bits, group}, dtype, layer_weights(37, 384, 300 + index), 37, 384);
      if (group == 64) {
        expect_batches(weight, {1, 4, 13, 16, 17, 64}, 3000 + index);
      } else {
        expect_batches(weight, {1, 2, 8}, 3000 + index);
      }
      ++index;
    }
  }
}

TEST_F(DeviceLinearTest, Int4EveryGroupAndDtypeMatchesTheReference) {
  int index = 0;
  for (const int group : {32, 64, 128}) {
    for (const DType dtype : {DType::BF16, DType::F16, DType::F32}) {
      const LinearWeight weight =
          make_int4_linear_weight(Int4Params{group}, dtype, layer_weights(37, 512, 400 + index), 37, 512);
      expect_batches(weight, {1, 3, 16, 17}, 4000 + index++);
    }
  }
}

TEST_F(DeviceLinearTest, DenseEveryDtypeMatchesTheReference) {
  int index = 0;
  for (const DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    // 37x512: vector loads; 7x33: the any-shape kernel and odd prefill panels.
    expect_batches(make_dense_linear_weight(dtype, layer_weights(37, 512, 500 + index), 37, 512), {1, 4, 16, 17, 64},
                   5000 + index);
    expect_batches(make_dense_linear_weight(dtype, layer_weights(7, 33, 600 + index), 7, 33), {1, 3, 17}, 6000 + index);
    ++index;
  }
}

TEST_F(DeviceLinearTest, LongRowsMatchTheReferenceInEveryGemvVersion) {
  // Rows long enough that a thread of the coalesced HLWQ kernel loops over several groups of 4-byte
  // units (512 units a group per CTA) and ends on a partial one; the other formats' long rows too.
  int index = 0;
  for (const auto& [bits, block, columns] : {std::tuple{4, 128, 5120 + 128}, std::tuple{5, 128, 4 * 1024 + 77},
                                             std::tuple{3, 64, 6000}, std::tuple{8, 32, 2500}}) {
    HlwqParams params;
    params.bits = bits;
    params.block = block;
    params.sign_seed = 77u;
    expect_batches(hlwq_weight(params, 21, columns, 900 + index), {1, 3, 4}, 9000 + index);
    ++index;
  }
  for (const int bits : {2, 4, 8}) {
    expect_batches(make_mlx_affine_linear_weight(AffineParams{bits, 64}, DType::BF16,
                                                 layer_weights(19, 64 * 97, 950 + bits), 19, 64 * 97),
                   {1, 2, 4}, 9100 + bits);
  }
  expect_batches(make_int4_linear_weight(Int4Params{128}, DType::F16, layer_weights(19, 128 * 49, 960), 19, 128 * 49),
                 {1, 4}, 9200);
}

TEST_F(DeviceLinearTest, TensorCorePairGemvMatchesTheReferenceAtEveryBatchItTakes) {
  // Version 4: 1001 rows (63 tiles, a partial last one: 8 warps a tile), its warps taking every
  // eighth 64-byte chunk (4224 columns at block 128: 33 chunks, so warps end unevenly and the ring of
  // 4 loads wraps; block 256 two chunks a gain), every batch 1..16 (one or two n-tiles; lanes past
  // the batch hold zeros), rotation none (the pairs of the identity path) and the uniform codebook
  // (another table).
  int index = 0;
  for (const auto& [block, rotation, codebook] :
       {std::tuple{128, Rotation::hadamard, CodebookKind::converged}, std::tuple{256, Rotation::hadamard, CodebookKind::converged},
        std::tuple{128, Rotation::none, CodebookKind::converged}, std::tuple{512, Rotation::hadamard, CodebookKind::uniform}}) {
    HlwqParams params;
    params.bits = 4;
    params.block = block;
    params.rotation = rotation;
    params.codebook = codebook;
    if (rotation == Rotation::hadamard) params.sign_seed = 31u;
    const LinearWeight weight = hlwq_weight(params, 1001, 4224, 1400 + index);
    expect_pair_gemv(weight, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1500 + index * 16);
    ++index;
  }
}

TEST_F(DeviceLinearTest, TensorCoreNibbleGemvMatchesTheReferenceAtEveryBatchItTakes) {
  // Version 4 of 4-bit MLX (bias) and INT4: 1001 rows (a partial last tile), 4224 columns (66
  // 64-column halves over 8 warps, so the ring of 8 loads wraps for two of them), groups of 64 and 128, every scale
  // dtype, batches 1..16.
  const std::vector<float> values = layer_weights(1001, 4224, 1600);
  int index = 0;
  for (const LinearWeight& weight :
       {make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, values, 1001, 4224),
        make_mlx_affine_linear_weight(AffineParams{4, 128}, DType::F16, values, 1001, 4224),
        make_int4_linear_weight(Int4Params{128}, DType::BF16, values, 1001, 4224),
        make_int4_linear_weight(Int4Params{64}, DType::F32, values, 1001, 4224)}) {
    expect_pair_gemv(weight, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1700 + index * 16);
    ++index;
  }
}

TEST_F(DeviceLinearTest, TensorCoreGemvSpreadsManyTilesOverFewerWarps) {
  // Tall weights make version 4 share tiles among fewer warps (tensor_core_tile.cuh): 12001 rows
  // (751 tiles) take 2 warps a tile and 40001 rows (2501 tiles) one, on any card of 94 to 187 SMs
  // (A100 108, H100 132);
  // 256 columns are 2 HLWQ chunks or 4 nibble halves a row (fewer than the ring holds); 1024 columns
  // are 8 chunks (16 halves), 4 (8) for each of 2 warps: the ring exactly full.
  int index = 0;
  for (const auto& [rows, columns] : {std::pair{int64_t{12001}, int64_t{256}}, std::pair{int64_t{40001}, int64_t{256}},
                                      std::pair{int64_t{12001}, int64_t{1024}}}) {
    HlwqParams params;
    params.bits = 4;
    params.block = 128;
    params.sign_seed = 7u;
    const std::vector<float> values = layer_weights(rows, columns, 1800 + index);
    for (const LinearWeight& weight :
         {hlwq_weight(params, rows, columns, 1800 + index),
          make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, values, rows, columns),
          make_int4_linear_weight(Int4Params{128}, DType::F16, values, rows, columns)}) {
      expect_pair_gemv(weight, {1, 7, 16}, 1900 + index * 16);
    }
    ++index;
  }
}

TEST_F(DeviceLinearTest, ColumnStationaryGemvWalksManyRowGroupsAndFallsBackOnLongRows) {
  // Version 3's persistent CTAs (HLWQ): short rows give small CTAs (up to 32 an SM), so 40000 rows are
  // more than two sweeps of any H100/H200 grid: both code buffers, the strided group loop and a
  // partial last group are exercised; Q4 (4-row groups) and Q7 (2-row groups). Rows of more than
  // 512 units (Q4, block 32, 20000 columns: 625 units) run version 1 instead, and must agree too.
  // The same for MLX 4/8-bit (4- and 2-row groups), INT4 and BF16 (8 columns a unit); 20480 columns
  // are more than 512 units in each.
  for (const auto& [rows, columns] : {std::pair{int64_t{40001}, int64_t{256}}, std::pair{int64_t{7}, int64_t{20480}}}) {
    const std::vector<float> values = layer_weights(rows, columns, 1100);
    for (const LinearWeight& weight :
         {make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, values, rows, columns),
          make_mlx_affine_linear_weight(AffineParams{8, 32}, DType::F16, values, rows, columns),
          make_int4_linear_weight(Int4Params{128}, DType::BF16, values, rows, columns),
          make_dense_linear_weight(DType::BF16, values, rows, columns)}) {
      const double error = product_error(weight, 1, PrefillPrecision::fp32, 1101, GemvVersion::column_stationary);
      EXPECT_LE(error, kFloatBound) << describe(weight) << " rows " << rows;
      worst.float_path = std::max(worst.float_path, error);
    }
  }
  int index = 0;
  for (const auto& [bits, block, rows, columns] :
       {std::tuple{4, 128, 40001, 256}, std::tuple{7, 128, 40003, 256}, std::tuple{5, 64, 9001, 1000},
        std::tuple{4, 32, 9, 20000}}) {
    HlwqParams params;
    params.bits = bits;
    params.block = block;
    params.sign_seed = 5u;
    const LinearWeight weight = hlwq_weight(params, rows, columns, 1200 + index);
    const double error = product_error(weight, 1, PrefillPrecision::fp32, 1300 + index, GemvVersion::column_stationary);
    EXPECT_LE(error, kFloatBound) << describe(weight);
    worst.float_path = std::max(worst.float_path, error);
    ++index;
  }
}

TEST_F(DeviceLinearTest, PrefillAt512TokensMatchesTheReference) {
  HlwqParams q4;
  q4.bits = 4;
  q4.block = 128;
  q4.sign_seed = 9u;
  const LinearWeight weights[] = {
      hlwq_weight(q4, 96, 1024, 41),
      make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, layer_weights(96, 1024, 42), 96, 1024),
      make_int4_linear_weight(Int4Params{128}, DType::BF16, layer_weights(96, 1024, 43), 96, 1024),
      make_dense_linear_weight(DType::BF16, layer_weights(96, 1024, 44), 96, 1024),
  };
  for (const LinearWeight& weight : weights) expect_batches(weight, {512}, 77);
}

TEST_F(DeviceLinearTest, GroupSharesOneRotationAndEqualsSeparateCalls) {
  HlwqParams q4;
  q4.bits = 4;
  q4.block = 128;
  q4.sign_seed = 3u;
  HlwqParams q5 = q4;
  q5.bits = 5;
  HlwqParams other_rotation = q4;
  other_rotation.sign_seed = 4u;
  const int64_t columns = 640;
  // Q5 first: the Q4 weight after it reuses the rotation the Q5 weight made (its fp16 pairs too).
  const LinearWeight host[] = {
      hlwq_weight(q5, 16, columns, 52), hlwq_weight(q4, 64, columns, 51),
      make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, layer_weights(16, columns, 53), 16, columns),
      hlwq_weight(other_rotation, 24, columns, 54)};
  std::vector<DeviceLinear> device;
  for (const LinearWeight& weight : host) device.emplace_back(weight);
  const std::vector<const DeviceLinear*> pointers = {&device[0], &device[1], &device[2], &device[3]};
  for (const auto& [batch, version] :
       {std::pair{int64_t{1}, GemvVersion::best_measured}, std::pair{int64_t{6}, GemvVersion::best_measured},
        std::pair{int64_t{20}, GemvVersion::best_measured}, std::pair{int64_t{1}, GemvVersion::tensor_core_pairs},
        std::pair{int64_t{6}, GemvVersion::tensor_core_pairs}}) {
    const std::vector<float> x = random_normal(static_cast<size_t>(batch * columns), 55 + batch, 1.0f);
    const DeviceBuffer x_device = on_device(x);
    LinearWorkspace workspace;
    workspace.set_gemv_version(version);
    std::vector<DeviceBuffer> grouped, separate;
    std::vector<float*> outputs;
    for (const LinearWeight& weight : host) {
      grouped.emplace_back(static_cast<size_t>(batch * weight.rows));
      separate.emplace_back(static_cast<size_t>(batch * weight.rows));
      poison(grouped.back());
      outputs.push_back(grouped.back().data());
    }
    cuda::linear_forward_group(pointers, x_device.data(), batch, outputs, workspace, nullptr);
    for (size_t i = 0; i < device.size(); ++i) {
      cuda::linear_forward(device[i], x_device.data(), batch, separate[i].data(), workspace, nullptr);
    }
    for (size_t i = 0; i < device.size(); ++i) {
      const std::vector<float> from_group = on_host(grouped[i]), alone = on_host(separate[i]);
      EXPECT_EQ(0, std::memcmp(from_group.data(), alone.data(), alone.size() * sizeof(float)))
          << describe(host[i]) << " batch " << batch;
      std::vector<float> expected(alone.size());
      linear_forward_reference(host[i], x, batch, expected);
      EXPECT_LE(relative_error(from_group, expected), gemv_bound(host[i], batch, version))
          << describe(host[i]) << " batch " << batch << " GEMV version " << static_cast<int>(version);
    }
  }
  std::vector<float*> one_output = {nullptr};
  EXPECT_NE(error_message([&] {
              LinearWorkspace workspace;
              cuda::linear_forward_group(pointers, nullptr, 1, one_output, workspace, nullptr);
            }),
            "(no error)");
}

// Largest difference in units in the last place (0 for equal floats).
int64_t ulps_apart(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = std::numeric_limits<int32_t>::min() - ia;
  if (ib < 0) ib = std::numeric_limits<int32_t>::min() - ib;
  return std::abs(static_cast<int64_t>(ia) - ib);
}

TEST_F(DeviceLinearTest, GatherRowsEqualsTheCpuDequantizationForEveryFormat) {
  std::vector<LinearWeight> weights;
  for (int bits = 2; bits <= 8; ++bits) {
    HlwqParams params;
    params.bits = bits;
    params.block = bits % 2 == 0 ? 64 : 128;
    params.sign_seed = 11u;
    if (bits == 3) params.sign_seed.reset();
    if (bits == 6) {
      params.sign_seed.reset();
      params.rotation = Rotation::none;
    }
    weights.push_back(hlwq_weight(params, 23, 300, 700 + bits));
  }
  int index = 0;
  for (const int bits : {2, 3, 4, 5, 6, 8}) {
    const DType dtype = std::array{DType::BF16, DType::F16, DType::F32}[index % 3];
    weights.push_back(make_mlx_affine_linear_weight(AffineParams{bits, index % 2 == 0 ? 64 : 32}, dtype,
                                                    layer_weights(23, 256, 800 + index), 23, 256));
    ++index;
  }
  for (const DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    weights.push_back(make_int4_linear_weight(Int4Params{32}, dtype, layer_weights(23, 256, 900), 23, 256));
    weights.push_back(make_dense_linear_weight(dtype, layer_weights(23, 100, 901), 23, 100));
  }
  const std::vector<int32_t> tokens = {0, 22, 5, -1, 23, 5, 11};
  const float scale = 1.75f;
  int32_t* tokens_device = nullptr;
  cuda::check_cuda(cudaMalloc(&tokens_device, tokens.size() * sizeof(int32_t)), "cudaMalloc");
  cuda::check_cuda(cudaMemcpy(tokens_device, tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice),
                   "upload");
  for (const LinearWeight& weight : weights) {
    const DeviceLinear device_weight(weight);
    DeviceBuffer out(tokens.size() * static_cast<size_t>(weight.columns));
    poison(out);
    cuda::gather_rows(device_weight, tokens_device, static_cast<int64_t>(tokens.size()), scale, out.data(), nullptr);
    const std::vector<float> got = on_host(out);
    std::vector<float> row(static_cast<size_t>(weight.columns));
    int64_t worst_ulps = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const bool valid = tokens[i] >= 0 && tokens[i] < weight.rows;
      if (valid) dequantize_linear_row(weight, tokens[i], row, AffineArithmetic::dequantize);
      for (int64_t c = 0; c < weight.columns; ++c) {
        const float expected = valid ? scale * row[c] : 0.0f;
        const float actual = got[i * weight.columns + c];
        ASSERT_TRUE(std::isfinite(actual)) << describe(weight) << " token " << tokens[i] << " column " << c;
        worst_ulps = std::max(worst_ulps, ulps_apart(actual, expected));
      }
    }
    EXPECT_LE(worst_ulps, 1) << describe(weight);
    worst.gather_ulps = std::max(worst.gather_ulps, worst_ulps);
  }
  cudaFree(tokens_device);
}

TEST_F(DeviceLinearTest, RepeatedDecodeCallsAllocateNothingAndReplayFromACudaGraph) {
  HlwqParams q4;
  q4.bits = 4;
  q4.block = 128;
  q4.sign_seed = 21u;
  const int64_t columns = 512;
  const LinearWeight host[] = {
      hlwq_weight(q4, 64, columns, 61),
      make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, layer_weights(32, columns, 62), 32, columns),
      make_int4_linear_weight(Int4Params{128}, DType::BF16, layer_weights(32, columns, 63), 32, columns),
      make_dense_linear_weight(DType::BF16, layer_weights(32, columns, 64), 32, columns)};
  std::vector<DeviceLinear> device;
  for (const LinearWeight& weight : host) device.emplace_back(weight);
  cudaStream_t stream = nullptr;
  cuda::check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  for (const int64_t batch : {int64_t{1}, int64_t{4}}) {
    const std::vector<float> x = random_normal(static_cast<size_t>(batch * columns), 65 + batch, 1.0f);
    const DeviceBuffer x_device = on_device(x);
    std::vector<DeviceBuffer> ys;
    for (const LinearWeight& weight : host) ys.emplace_back(static_cast<size_t>(batch * weight.rows));
    LinearWorkspace workspace;
    // The first call grows the workspace; capturing the same shapes must then allocate nothing.
    for (size_t i = 0; i < device.size(); ++i) {
      cuda::linear_forward(device[i], x_device.data(), batch, ys[i].data(), workspace, stream);
    }
    cuda::check_cuda(cudaStreamSynchronize(stream), "synchronize");
    const uint64_t bytes_before = workspace.device_bytes();
    cudaGraph_t graph = nullptr;
    cuda::check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture");
    for (size_t i = 0; i < device.size(); ++i) {
      cuda::linear_forward(device[i], x_device.data(), batch, ys[i].data(), workspace, stream);
    }
    cuda::check_cuda(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    EXPECT_EQ(workspace.device_bytes(), bytes_before);
    cudaGraphExec_t executable = nullptr;
    cuda::check_cuda(cudaGraphInstantiate(&executable, graph, 0), "cudaGraphInstantiate");
    for (DeviceBuffer& y : ys) poison(y);
    // The poison is on the legacy stream, which a non-blocking stream does not wait for.
    cuda::check_cuda(cudaDeviceSynchronize(), "synchronize");
    cuda::check_cuda(cudaGraphLaunch(executable, stream), "cudaGraphLaunch");
    cuda::check_cuda(cudaStreamSynchronize(stream), "synchronize");
    for (size_t i = 0; i < device.size(); ++i) {
      std::vector<float> expected(static_cast<size_t>(batch * host[i].rows));
      linear_forward_reference(host[i], x, batch, expected);
      EXPECT_LE(relative_error(on_host(ys[i]), expected), gemv_bound(host[i], batch, GemvVersion::best_measured))
          << describe(host[i]) << " batch " << batch;
    }
    cudaGraphExecDestroy(executable);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(stream);
}

TEST_F(DeviceLinearTest, ReportsWhatItCannotRunAndHowMuchMemoryItHolds) {
  LinearWeight f64;
  f64.format = LinearFormat::dense;
  f64.rows = 2;
  f64.columns = 4;
  f64.dtype = DType::F64;
  f64.data = AlignedBuffer(size_t{2 * 4 * 8});
  EXPECT_NE(error_message([&] { DeviceLinear weight(f64); }).find("F64"), std::string::npos);
  HlwqParams q4;
  q4.bits = 4;
  q4.block = 128;
  const LinearWeight weight = hlwq_weight(q4, 8, 256, 71);
  const DeviceLinear device_weight(weight);
  EXPECT_EQ(device_weight.device_bytes(), weight.codes.size() + weight.norms.size() + 16 * sizeof(float));
  const LinearWeight mlx =
      make_mlx_affine_linear_weight(AffineParams{4, 64}, DType::BF16, layer_weights(8, 256, 72), 8, 256);
  EXPECT_EQ(DeviceLinear(mlx).device_bytes(), mlx.stored_bytes());  // BF16 scales stay BF16
}

// Trellis codes have no GPU kernel: the upload refuses them in one line that names the format,
// before any CUDA call (so this runs on machines without a GPU too).
TEST(DeviceLinearRefusal, TrellisWeightsAreRefusedInOneLine) {
  const LinearWeight trellis = make_trellis_linear_weight(std::make_shared<const TrellisCodec>(TrellisFormat{}, 256),
                                                          layer_weights(8, 256, 73), 8, pool());
  const std::string message = error_message([&] { DeviceLinear weight(trellis); });
  EXPECT_NE(message.find("trellis"), std::string::npos) << message;
  EXPECT_NE(message.find("--backend cpu"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

#endif  // HLWQ_HAVE_CUDA

}  // namespace
}  // namespace hlwq
