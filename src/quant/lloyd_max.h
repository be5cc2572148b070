// Lloyd-Max scalar quantizers for the standard normal distribution: the codebook that HLWQ applies
// to every rotated, unit-variance weight (docs HLWQ.md step 5).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hlwq {

enum class CodebookKind {
  converged,          // the MSE-optimal fixed point, solved to 1e-12 (what hlwq uses by default)
  polarquant_compat,  // the published reference code's codebook: 100 Lloyd steps from [-4, 4]
};

struct Codebook {
  int bits = 0;
  std::vector<float> centroids;   // 2^bits, ascending
  std::vector<float> boundaries;  // 2^bits - 1 decision thresholds (midpoints of the centroids)
  double mse = 0;                 // E[(z - c[q(z)])^2] for z ~ N(0,1), in closed form
};

// bits 1..8; throws hlwq::Error otherwise. Deterministic and cheap (well under a millisecond).
Codebook lloyd_max_codebook(int bits, CodebookKind kind = CodebookKind::converged);

// Index of the nearest centroid: the number of boundaries strictly below z (a tie goes to the
// lower code; NaN gives code 0). Binary search over codebook.boundaries.
uint8_t nearest_code(const Codebook& codebook, float z);

// Closed-form mean squared error of the quantizer with these (ascending) centroids and midpoint
// thresholds, for z ~ N(0,1). Throws hlwq::Error if the centroids are empty or not ascending.
double gaussian_quantizer_mse(std::span<const double> centroids);

// "converged" / "polarquant_compat", as stored in model configs.
const char* codebook_kind_name(CodebookKind kind);

}  // namespace hlwq
