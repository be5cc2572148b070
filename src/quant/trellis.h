// Trellis codes for N(0,1) coordinates: a bitshift trellis with a computed codebook, encoded by the
// Viterbi algorithm for least squared error (the scheme of QTIP, arXiv:2406.11235, built here from
// its description).
//
// Why: HLWQ codes each rotated coordinate alone with the Lloyd-Max quantizer, which for Gaussian
// coordinates is 1.53 dB (2 bits: 2.7 dB) short of the rate-distortion bound of 6.02 dB a bit. A
// trellis codes a whole sequence at once: a stream of bits advances k bits a value, the state is the
// stream's last L bits, and the value of a step is codebook[state]. With 2^L states (L around 16)
// the reachable sequences cover the Gaussian ball far better than a product of scalar grids, at the
// same k bits a value (plus L - k bits to start the walk).
//
// Cost: encoding is O(n 2^L) (the 2^k predecessors of a state are shared by the 2^k states that
// differ in their last k bits, so the minimum over them is taken once per group), SIMD over groups
// and states; decoding is a shift, a mask and a table lookup a value.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hlwq {

struct TrellisParams {
  int state_bits = 16;     // L, 2..20
  int bits_per_value = 2;  // k, 1..8, less than L
};

// Throws hlwq::Error unless 1 <= k < L <= 20 (the codebook of 2^20 states takes about a second).
void check_trellis_params(const TrellisParams& params);

// The value of each of the 2^L states: the Gaussian quantiles Phi^-1((i + 0.5) / 2^L), assigned to
// states by a fixed bijective hash of the state, so that the values a state reaches in a few steps
// are spread like independent N(0, 1) draws. Deterministic; mean 0 and variance just under 1.
std::vector<float> trellis_codebook(int state_bits);

// A walk: its first state (L bits), then k bits a step for each further value (one a byte here;
// the stored form packs them).
struct TrellisWalk {
  uint32_t first_state = 0;
  std::vector<uint8_t> steps;  // values.size() - 1 entries below 2^k
};

// The walk whose values are nearest to `values` in squared error (exact: Viterbi). `codebook` is
// trellis_codebook(L) or any table of 2^L values. When end_costs is given it receives, for each of
// the 2^L states, the squared error (summed in float) of the best walk that ends there.
TrellisWalk trellis_encode(const TrellisParams& params, std::span<const float> codebook, std::span<const float> values,
                           std::vector<float>* end_costs = nullptr);

// The same walk by the plain scalar recursion (the encoder above is SIMD with the same comparisons
// and roundings, no multiply-add fused, so the walks and end costs are equal bit for bit on every
// SIMD target); for tests and timing.
TrellisWalk trellis_encode_reference(const TrellisParams& params, std::span<const float> codebook,
                                     std::span<const float> values, std::vector<float>* end_costs = nullptr);

// The values of a walk, into `out` (steps.size() + 1 values).
void trellis_decode(const TrellisParams& params, std::span<const float> codebook, const TrellisWalk& walk,
                    std::span<float> out);

// Stored bits of a walk over n values: L + (n - 1) k.
int64_t trellis_walk_bits(const TrellisParams& params, int64_t values);

}  // namespace hlwq
