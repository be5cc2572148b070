// `hlwq export --to prism-hadamard`: a Qwen3.5 model (dense or HLWQ) -> the pack mlx-lm 0.32 loads
// as model_type prism_hadamard_qwen35: 2-bit affine groups of 128 (uint32 words, float16 scales and
// biases) of W diag(signs) H_B^T per decoder linear, the embedding and lm_head, so that mlx-lm's
// quantized_matmul on the rotated activation computes x W^T. Schema 1 ("mlx-lm-text"): the text
// decoder only, keyed like mlx-lm's qwen3_5.TextModel. docs/FORMAT.md has the layout.
#pragma once

#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/export_model.h"
#include "io/model_folder.h"

namespace hlwq {

// Seeds of the sign vectors: module i of the manifest (in storage order) uses
// random_signs(kPrismSignSeed + i, width) unless ExportOptions::sign_seed is set.
inline constexpr uint64_t kPrismSignSeed = 0x707269736d480000ull;

ExportSummary export_prism_hadamard(const std::filesystem::path& input, const std::filesystem::path& output,
                                    const ExportOptions& options);

// One packed module of a pack read back: float16 dequantization (as mx.dequantize computes it for
// float16 scales) rotated back to the input basis, row-major [rows, width].
std::vector<float> prism_dequantize_module(const ModelFolder& pack, const nlohmann::json& record);

// A plain float32 folder of the same weights that mlx-lm loads as qwen3_5: every packed module's
// dequantized, rotated-back weight (the embedding's rounded to float16, as the pack's lookup returns
// its rows), every other tensor's bytes unchanged. For cross-checks.
void write_prism_dequantized(const std::filesystem::path& pack, const std::filesystem::path& output);

}  // namespace hlwq
