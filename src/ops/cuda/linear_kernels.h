// The launch interface between the host side of the GPU linear layers (device_linear.cc, compiled
// by the C++ compiler) and their kernels (*.cu, compiled by nvcc): plain views of a weight's device
// buffers and one launch function per kernel. Nothing here includes the hlwq headers, so nvcc
// never parses the C++20 host code. Every launch is asynchronous on the given stream; a launch that
// fails throws hlwq::Error (check_cuda).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace hlwq::cuda::kernels {

// The element type of a dense weight, or of MLX / CompressedTensors scales and biases, as stored on
// the device (the file's own dtype: BF16 scales cost half the bytes of floats per product).
enum class StoredFloat : int { f32, f16, bf16 };

// An HLWQ weight: per row `code_bytes` packed codes (docs/FORMAT.md: per block, planes of 4, 2 and 1
// bits, lowest code bits first) and `blocks` fp16 gains.
struct HlwqView {
  const uint8_t* codes = nullptr;
  const uint16_t* gains = nullptr;
  const float* centroids = nullptr;  // 2^bits floats
  const float* signs = nullptr;      // blocks * block floats (+-1, padding +1), or null without a seed
  int64_t rows = 0;
  int64_t columns = 0;
  int bits = 0;
  int block = 0;
  int64_t blocks = 0;
  int64_t code_bytes = 0;         // per row
  bool rotate = true;             // Hadamard (with signs when set) or the identity
  float identity_scale = 0;       // float(1 / sqrt(block)): rotation none folds it into x
  int64_t padded_columns = 0;    // blocks * block: the rotated activations' row length
};

// MLX affine: per row columns * bits / 32 uint32 words (one LSB-first bit stream), per group a scale
// and a bias; w = scale * q + bias.
struct AffineView {
  const uint32_t* packed = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  StoredFloat scale_type = StoredFloat::f32;
  int64_t rows = 0;
  int64_t columns = 0;
  int bits = 0;
  int group = 0;
};

// CompressedTensors INT4: per row columns / 8 words of (q + 8) nibbles, LSB first; w = q * scale.
struct Int4View {
  const uint32_t* packed = nullptr;
  const void* scales = nullptr;
  StoredFloat scale_type = StoredFloat::f32;
  int64_t rows = 0;
  int64_t columns = 0;
  int group = 0;
};

// A dense rows x columns matrix of F32, F16 or BF16.
struct DenseView {
  const void* data = nullptr;
  StoredFloat element = StoredFloat::f32;
  int64_t rows = 0;
  int64_t columns = 0;
};

// Versions of the decode kernels (docs/KERNELS.md), all kept, tested and timed side by side.
// wide_units (version 1): a thread reads the widest unit of codes the planes allow (16 bytes).
// coalesced_words (version 2): a thread reads 4-byte words, consecutive threads consecutive words
// (coalesced activation loads), the next group of words loaded while the current one is decoded;
// batch tiles 1 and 4 only. column_stationary (version 3, every format): batch 1, a CTA spans whole
// rows and each thread keeps its unit's activations in registers for every row it visits
// (persistent grid); other batches and rows of more than 512 units run version 1. best_measured
// picks per batch what measured faster on an H100: version 1 at batch 1; at batches 2-16 version 4
// where it applies, else version 2 at batches 2-4 and version 1 above. tensor_core_pairs (version 4, HLWQ Q4 with blocks of 128 or more, batch 1..16):
// code pairs through a table into fp16 tensor-core products with fp32 sums (x' and the codebook
// rounded to fp16: relative error about 3e-4); the same for 4-bit MLX affine and INT4 (nibble pairs,
// no table); other weights and batches run best_measured.
enum class GemvVersion : int {
  best_measured = 0,
  wide_units = 1,
  coalesced_words = 2,
  column_stationary = 3,
  tensor_core_pairs = 4,
};

// Whether a 4-bit product (HLWQ Q4, 4-bit MLX, INT4) runs version 4 where it applies: when asked,
// and by default at batches 2-16, where an H100 measured a Llama-3-8B layer's seven products 1.3x
// (HLWQ, against version 2) and 1.8-1.9x (MLX, INT4) faster at batch 4 and 5-8x at 16; at batch 1
// it was slower than version 1 (docs/KERNELS.md).
inline bool wants_tensor_core_pairs(GemvVersion version, int64_t batch) {
  return version == GemvVersion::tensor_core_pairs || (version == GemvVersion::best_measured && batch >= 2);
}

// The largest batch the decode kernels (GEMV) take in one pass over the weight.
inline constexpr int64_t kMaxGemvBatch = 16;

// ---- Decode: y = x W^T for 1 <= batch <= kMaxGemvBatch, each weight byte read once. ----

// rotated (batch x padded_columns) = per block (H(s * x_block) / block) with the unnormalized
// Hadamard H, zero padding; or x * identity_scale without rotation. The GEMV then needs only
// sum_i gain * c[q_i] * rotated_i per block.
// rotated must hold hlwq_rotated_bytes: the floats, then (for weights version 4 takes) the same
// values in fp16 in that version's pair order.
uint64_t hlwq_rotated_bytes(const HlwqView& weight, int64_t batch);
void hlwq_rotate_activations(const HlwqView& weight, const float* x, int64_t batch, float* rotated,
                             cudaStream_t stream);
bool hlwq_gemv_applies(const HlwqView& weight, int64_t batch);
void hlwq_gemv(const HlwqView& weight, const float* rotated, int64_t batch, float* y, GemvVersion version,
               cudaStream_t stream);

bool affine_gemv_applies(const AffineView& weight, int64_t batch);
void affine_gemv(const AffineView& weight, const float* x, int64_t batch, float* y, GemvVersion version,
                 cudaStream_t stream);

bool int4_gemv_applies(const Int4View& weight, int64_t batch);
void int4_gemv(const Int4View& weight, const float* x, int64_t batch, float* y, GemvVersion version,
               cudaStream_t stream);

// Version 4 of the 4-bit MLX affine (groups of 64, 128, ...) and INT4 products (batch 1..16, columns a
// multiple of 128): x into fp16 pairs and per-64-column sums in `scratch` (nibble_pair_scratch_bytes),
// then tensor-core products of nibble pairs with fp32 sums (x rounded to fp16: relative error about
// 2e-4).
bool nibble_pair_gemv_applies(const AffineView& weight, int64_t batch);
bool nibble_pair_gemv_applies(const Int4View& weight, int64_t batch);
uint64_t nibble_pair_scratch_bytes(int64_t columns, int64_t batch);
void nibble_pair_gemv(const AffineView& weight, const float* x, int64_t batch, void* scratch, float* y,
                      cudaStream_t stream);
void nibble_pair_gemv(const Int4View& weight, const float* x, int64_t batch, void* scratch, float* y,
                      cudaStream_t stream);

bool dense_gemv_applies(const DenseView& weight, int64_t batch);
void dense_gemv(const DenseView& weight, const float* x, int64_t batch, float* y, GemvVersion version,
                cudaStream_t stream);

// ---- Prefill: rows [first_row, first_row + row_count) of the weight as a row-major matrix of
// floats (out_bf16 false) or BF16 (true) in scratch, for a cuBLAS product. ----

// HLWQ in the rotated domain: out[r, i] = gain(r, i / block) * c[q(r, i)], padded_columns wide;
// multiplied by the rotated activations it gives y (no inverse transform needed).
void hlwq_dequantize_rotated(const HlwqView& weight, int64_t first_row, int64_t row_count, void* out,
                             bool out_bf16, cudaStream_t stream);
// w = scale * q + bias in float (MLX's matmul arithmetic).
void affine_dequantize(const AffineView& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                       cudaStream_t stream);
void int4_dequantize(const Int4View& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                     cudaStream_t stream);
void dense_convert(const DenseView& weight, int64_t first_row, int64_t row_count, void* out, bool out_bf16,
                   cudaStream_t stream);
// count floats to BF16 (round to nearest even).
void floats_to_bf16(const float* in, int64_t count, void* out, cudaStream_t stream);

// ---- Embedding lookup: out[i, :] = scale * row tokens[i], as the CPU's dequantize_linear_row
// (AffineArithmetic::dequantize) gives it; tokens outside [0, rows) give zeros. ----
void hlwq_gather_rows(const HlwqView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                      cudaStream_t stream);
void affine_gather_rows(const AffineView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                        cudaStream_t stream);
void int4_gather_rows(const Int4View& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                      cudaStream_t stream);
void dense_gather_rows(const DenseView& weight, const int32_t* tokens, int64_t count, float scale, float* out,
                       cudaStream_t stream);

// ---- Measurement: the card's streaming read bandwidth (bench and docs). ----
// Sums `floats` floats of `data` (16-byte loads, grid-stride) into *sum (one float in device memory).
void streaming_read_sum(const float* data, size_t floats, float* sum, cudaStream_t stream);

}  // namespace hlwq::cuda::kernels
