// Lloyd-Max scalar quantizers for the standard normal distribution: the codebook that HLWQ applies
// to every rotated, unit-variance weight (step 5 of the method); plus the uniform levels of the
// absmax baseline that the ablation compares them with.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hlwq {

enum class CodebookKind {
  converged,          // the MSE-optimal fixed point, solved to 1e-12 (what hlwq uses by default)
  polarquant_compat,  // the published reference code's codebook: 100 Lloyd steps from [-4, 4]
  uniform,            // not Lloyd-Max: the absmax baseline's evenly spaced levels (below), which the
                      // codec scales by each block's largest |z| instead of using them as z values
};

struct Codebook {
  int bits = 0;
  std::vector<float> centroids;   // 2^bits, ascending
  std::vector<float> boundaries;  // 2^bits - 1 decision thresholds (midpoints of the centroids)
  double mse = 0;                 // E[(z - c[q(z)])^2] for z ~ N(0,1), in closed form
};

// bits 1..8; throws hlwq::Error otherwise. Deterministic and cheap (well under a millisecond).
// For CodebookKind::uniform (bits >= 2) the centroids are uniform_absmax_levels(bits) and `mse` is
// that of those unscaled levels on N(0,1): a defined number, but not what the absmax codec achieves.
Codebook lloyd_max_codebook(int bits, CodebookKind kind = CodebookKind::converged);

// The absmax baseline of the paper (arXiv:2603.29078, eq. 1: q = round(x / max|x| * (2^(b-1) - 1))
// in -2^(b-1) .. 2^(b-1) - 1) as a codebook on [-1, 1]: level k is (k - 2^(b-1)) / (2^(b-1) - 1),
// k = 0 .. 2^b - 1. Levels 1 .. 2^b - 1 are 2^b - 1 evenly spaced values with an exact zero and +-1;
// level 0 (below -1) exists only because codes have b bits, and absmax never picks it.
// bits 2..8; throws hlwq::Error otherwise.
std::vector<double> uniform_absmax_levels(int bits);

// Phi^-1(p) for 0 < p < 1 (throws hlwq::Error otherwise), to the last bit by bisection: about
// 200 evaluations of erfc, so for thousands of values, not millions.
double normal_quantile(double p);

// Index of the nearest centroid: the number of boundaries strictly below z (a tie goes to the
// lower code; NaN gives code 0). Binary search over codebook.boundaries.
uint8_t nearest_code(const Codebook& codebook, float z);

// Closed-form mean squared error of the quantizer with these (ascending) centroids and midpoint
// thresholds, for z ~ N(0,1). Throws hlwq::Error if the centroids are empty or not ascending.
double gaussian_quantizer_mse(std::span<const double> centroids);

// "converged" / "polarquant_compat" / "uniform", for messages (model configs spell them as
// model_weights.cc's hlwq_params_to_json does).
const char* codebook_kind_name(CodebookKind kind);

}  // namespace hlwq
