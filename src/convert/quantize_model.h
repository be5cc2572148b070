// `hlwq quantize`: a dense model folder -> an HLWQ model folder, streamed one tensor at a time
// from the memory-mapped input so peak memory stays near the largest tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "convert/tensor_selection.h"
#include "quant/hlwq_codec.h"

namespace hlwq {

struct QuantizeOptions {
  HlwqParams params;
  // Per tensor, params.block or the block fitted to the row width (fitted_block): no padded blocks.
  bool fit_block_to_rows = false;
  // > 0: each quantized tensor gets its own code width so that their codes and gains store this
  // many bits per weight on average (convert/width_planning.h); params.bits is then unused.
  double target_bits_per_weight = 0;
  // > 0: trellis codes (quant/trellis_codec.h) with this many state bits L and params.bits bits a
  // value, instead of Lloyd-Max codes; params.block, sign_seed and gain as for HLWQ (rotation
  // hadamard, codebook unused).
  int trellis_state_bits = 0;
  TensorSelection selection;
  int threads = 0;
  bool progress = false;
  uint64_t max_shard_bytes = uint64_t{5} << 30;
};

struct QuantizeSummary {
  size_t tensors = 0;
  size_t quantized_tensors = 0;
  uint64_t elements = 0;
  uint64_t quantized_elements = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t quantized_bytes_in = 0;   // input bytes of the tensors that were quantized
  uint64_t quantized_bytes_out = 0;  // codes + norms
  uint64_t stored_tensor_bytes = 0;  // every tensor's bytes as written (no headers, no config)
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  uint64_t largest_tensor_bytes = 0;
  std::map<int, size_t> tensors_per_width;  // code width -> how many tensors have it

  nlohmann::json to_json() const;
};

QuantizeSummary quantize_model(const std::filesystem::path& input, const std::filesystem::path& output,
                               const QuantizeOptions& options);

// Peak resident memory of this process so far (bytes).
uint64_t peak_resident_bytes();

}  // namespace hlwq
