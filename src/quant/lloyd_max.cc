// Lloyd-Max codebooks for N(0,1): the converged optimum (Newton on Lloyd's fixed point, then plain
// Lloyd steps until they move no centroid by 1e-12) and the published reference's 100-step variant;
// and the absmax baseline's uniform levels, which share the codebook's form (centroids, thresholds).
#include "quant/lloyd_max.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace hlwq {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kInverseSqrt2 = 0.70710678118654752440;
constexpr double kInverseSqrt2Pi = 0.39894228040143267794;

double normal_pdf(double x) { return std::isinf(x) ? 0.0 : kInverseSqrt2Pi * std::exp(-0.5 * x * x); }

// x * pdf(x), which is 0 at both infinities (the plain product would be inf * 0 = NaN).
double x_times_pdf(double x) { return std::isinf(x) ? 0.0 : x * normal_pdf(x); }

// P(a < Z < b) for Z ~ N(0,1). Differences of upper (or lower) tails keep full relative accuracy
// far out, where 1 - Phi(x) would lose every digit.
double normal_interval_probability(double a, double b) {
  if (a >= 0) return 0.5 * (std::erfc(a * kInverseSqrt2) - std::erfc(b * kInverseSqrt2));
  if (b <= 0) return 0.5 * (std::erfc(-b * kInverseSqrt2) - std::erfc(-a * kInverseSqrt2));
  return 1.0 - 0.5 * (std::erfc(-a * kInverseSqrt2) + std::erfc(b * kInverseSqrt2));
}

double normal_cdf(double x) { return 0.5 * std::erfc(-x * kInverseSqrt2); }

// Phi^-1(p) by bisection: slow but exact to the last bit, and only used for the starting point.
double inverse_normal_cdf(double p) {
  double low = -40.0, high = 40.0;
  for (int step = 0; step < 200 && low < high; ++step) {
    const double middle = 0.5 * (low + high);
    if (middle == low || middle == high) break;
    (normal_cdf(middle) < p ? low : high) = middle;
  }
  return 0.5 * (low + high);
}

// Decision thresholds of the intervals: interval k is (thresholds[k], thresholds[k + 1]).
std::vector<double> interval_edges(std::span<const double> centroids) {
  const size_t levels = centroids.size();
  std::vector<double> edges(levels + 1);
  edges.front() = -kInfinity;
  edges.back() = kInfinity;
  for (size_t k = 1; k < levels; ++k) edges[k] = 0.5 * (centroids[k - 1] + centroids[k]);
  return edges;
}

// One Lloyd step (each centroid moves to the mean of N(0,1) over its interval) and the step's
// derivatives with respect to the interval's lower and upper edge, which Newton's method needs.
struct LloydStep {
  std::vector<double> centroids;
  std::vector<double> by_lower_edge;
  std::vector<double> by_upper_edge;
};

LloydStep lloyd_step(std::span<const double> centroids) {
  const std::vector<double> edges = interval_edges(centroids);
  const size_t levels = centroids.size();
  LloydStep step{std::vector<double>(levels), std::vector<double>(levels), std::vector<double>(levels)};
  for (size_t k = 0; k < levels; ++k) {
    const double a = edges[k], b = edges[k + 1];
    const double probability = normal_interval_probability(a, b);
    check(probability > 0, "internal: empty Lloyd-Max interval (", a, ", ", b, ")");
    const double mean = (normal_pdf(a) - normal_pdf(b)) / probability;
    step.centroids[k] = mean;
    // d mean / d a = pdf(a) (mean - a) / P and d mean / d b = pdf(b) (b - mean) / P; 0 at infinity.
    step.by_lower_edge[k] = std::isinf(a) ? 0.0 : normal_pdf(a) * (mean - a) / probability;
    step.by_upper_edge[k] = std::isinf(b) ? 0.0 : normal_pdf(b) * (b - mean) / probability;
  }
  return step;
}

// The optimum is symmetric; imposing it exactly makes the middle threshold exactly 0.
void make_symmetric(std::vector<double>& centroids) {
  const size_t levels = centroids.size();
  for (size_t k = 0; k < levels / 2; ++k) {
    const double magnitude = 0.5 * (centroids[levels - 1 - k] - centroids[k]);
    centroids[k] = -magnitude;
    centroids[levels - 1 - k] = magnitude;
  }
}

bool strictly_ascending_and_finite(std::span<const double> values) {
  for (size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(values[k])) return false;
    if (k > 0 && !(values[k - 1] < values[k])) return false;
  }
  return true;
}

double max_abs_difference(std::span<const double> a, std::span<const double> b) {
  double largest = 0;
  for (size_t k = 0; k < a.size(); ++k) largest = std::max(largest, std::abs(a[k] - b[k]));
  return largest;
}

// Solves the tridiagonal system (lower, diagonal, upper) x = right (Thomas algorithm). The
// Jacobian below is diagonally dominant (the Lloyd map contracts for log-concave densities), so
// no pivoting is needed.
std::vector<double> solve_tridiagonal(std::vector<double> lower, std::vector<double> diagonal,
                                      std::vector<double> upper, std::vector<double> right) {
  const size_t n = diagonal.size();
  for (size_t i = 1; i < n; ++i) {
    const double factor = lower[i] / diagonal[i - 1];
    diagonal[i] -= factor * upper[i - 1];
    right[i] -= factor * right[i - 1];
  }
  std::vector<double> solution(n);
  solution[n - 1] = right[n - 1] / diagonal[n - 1];
  for (size_t i = n - 1; i-- > 0;) solution[i] = (right[i] - upper[i] * solution[i + 1]) / diagonal[i];
  return solution;
}

// Lloyd's iteration converges linearly, slower with every bit (about 90,000 steps for 8 bits to
// move less than 1e-12 per step, and even then it is ~1e-9 from the fixed point). Newton's method
// on F(c) = c - Lloyd(c) reaches the fixed point in about 5 steps from the high-resolution
// (companding) start, where centroids sit at the quantiles of N(0, 3); plain Lloyd steps then
// confirm convergence with the stated criterion.
std::vector<double> converged_centroids(size_t levels) {
  std::vector<double> centroids(levels);
  for (size_t k = 0; k < levels; ++k) {
    centroids[k] = std::sqrt(3.0) * inverse_normal_cdf((static_cast<double>(k) + 0.5) / levels);
  }
  make_symmetric(centroids);
  for (int iteration = 0; iteration < 100; ++iteration) {
    const LloydStep step = lloyd_step(centroids);
    std::vector<double> lower(levels), diagonal(levels), upper(levels), residual(levels);
    for (size_t k = 0; k < levels; ++k) {
      // G_k depends on c_{k-1}, c_k, c_{k+1} through the edges (c_{k-1}+c_k)/2 and (c_k+c_{k+1})/2.
      lower[k] = -0.5 * step.by_lower_edge[k];
      upper[k] = -0.5 * step.by_upper_edge[k];
      diagonal[k] = 1.0 - 0.5 * (step.by_lower_edge[k] + step.by_upper_edge[k]);
      residual[k] = centroids[k] - step.centroids[k];
    }
    const std::vector<double> newton = solve_tridiagonal(lower, diagonal, upper, residual);
    // Damped when a full step would reorder the centroids (never seen from this start).
    double fraction = 1.0;
    std::vector<double> next(levels);
    for (int halving = 0; halving < 60; ++halving, fraction *= 0.5) {
      for (size_t k = 0; k < levels; ++k) next[k] = centroids[k] - fraction * newton[k];
      if (strictly_ascending_and_finite(next)) break;
    }
    check(strictly_ascending_and_finite(next), "internal: Lloyd-Max Newton step failed");
    make_symmetric(next);
    const double change = max_abs_difference(next, centroids);
    centroids = std::move(next);
    if (change < 1e-14) break;
  }
  for (int iteration = 0; iteration < 10000; ++iteration) {
    std::vector<double> next = lloyd_step(centroids).centroids;
    make_symmetric(next);
    const double change = max_abs_difference(next, centroids);
    centroids = std::move(next);
    if (change < 1e-12) return centroids;
  }
  fail("internal: Lloyd-Max iteration did not converge for ", levels, " levels");
}

// What the published reference (PolarQuant, github.com/caiovicentino/polarengine-vllm,
// polarengine_vllm/utils.py: compute_lloyd_max_centroids) does, re-implemented: thresholds start
// uniform on [-4, 4] (numpy linspace(-4, 4, levels + 1) with the ends replaced by -inf/+inf), then
// exactly 100 rounds of "centroids = interval means (closed-form Gaussian integrals, float64),
// thresholds = midpoints"; the centroids of the last round are returned (as float32 there, and
// here once make_codebook rounds them). An interval of probability <= 1e-10 takes its midpoint,
// as there; with these starting thresholds that branch is never taken.
std::vector<double> polarquant_compat_centroids(size_t levels) {
  std::vector<double> edges(levels + 1);
  for (size_t k = 0; k <= levels; ++k) edges[k] = -4.0 + 8.0 * static_cast<double>(k) / levels;
  edges.front() = -kInfinity;
  edges.back() = kInfinity;
  std::vector<double> centroids(levels);
  for (int iteration = 0; iteration < 100; ++iteration) {
    for (size_t k = 0; k < levels; ++k) {
      const double a = edges[k], b = edges[k + 1];
      const double probability = normal_interval_probability(a, b);
      centroids[k] = probability > 1e-10 ? (normal_pdf(a) - normal_pdf(b)) / probability : 0.5 * (a + b);
    }
    for (size_t k = 1; k < levels; ++k) edges[k] = 0.5 * (centroids[k - 1] + centroids[k]);
  }
  check(strictly_ascending_and_finite(centroids), "internal: PolarQuant-compatible codebook failed");
  return centroids;
}

// Rounds the centroids to float; the thresholds are the exact midpoints of those float centroids
// (rounded to float), so nearest_code matches "argmin |z - c|" on the stored centroids, and the
// MSE is that of the quantizer actually applied.
Codebook make_codebook(int bits, std::span<const double> centroids) {
  Codebook codebook;
  codebook.bits = bits;
  std::vector<double> rounded(centroids.size());
  for (size_t k = 0; k < centroids.size(); ++k) {
    codebook.centroids.push_back(static_cast<float>(centroids[k]));
    rounded[k] = codebook.centroids.back();
  }
  for (size_t k = 1; k < rounded.size(); ++k) {
    codebook.boundaries.push_back(static_cast<float>(0.5 * (rounded[k - 1] + rounded[k])));
  }
  codebook.mse = gaussian_quantizer_mse(rounded);
  return codebook;
}

}  // namespace

double normal_quantile(double p) {
  check(p > 0.0 && p < 1.0, "normal quantile needs 0 < p < 1, got ", p);
  return inverse_normal_cdf(p);
}

Codebook lloyd_max_codebook(int bits, CodebookKind kind) {
  check(bits >= 1 && bits <= 8, "Lloyd-Max codebook bits must be 1..8, got ", bits);
  const size_t levels = size_t{1} << bits;
  switch (kind) {
    case CodebookKind::converged:
      return make_codebook(bits, converged_centroids(levels));
    case CodebookKind::polarquant_compat:
      return make_codebook(bits, polarquant_compat_centroids(levels));
    case CodebookKind::uniform:
      return make_codebook(bits, uniform_absmax_levels(bits));
  }
  fail("unknown codebook kind ", static_cast<int>(kind));
}

std::vector<double> uniform_absmax_levels(int bits) {
  check(bits >= 2 && bits <= 8, "uniform absmax codebook bits must be 2..8, got ", bits);
  const int half = 1 << (bits - 1);
  std::vector<double> levels(size_t{1} << bits);
  for (size_t k = 0; k < levels.size(); ++k) {
    levels[k] = static_cast<double>(static_cast<int>(k) - half) / static_cast<double>(half - 1);
  }
  return levels;
}

uint8_t nearest_code(const Codebook& codebook, float z) {
  const auto first_not_below = std::lower_bound(codebook.boundaries.begin(), codebook.boundaries.end(), z);
  return static_cast<uint8_t>(first_not_below - codebook.boundaries.begin());
}

double gaussian_quantizer_mse(std::span<const double> centroids) {
  check(!centroids.empty(), "quantizer has no centroids");
  check(strictly_ascending_and_finite(centroids), "quantizer centroids must be finite and ascending");
  const std::vector<double> edges = interval_edges(centroids);
  double total = 0;
  for (size_t k = 0; k < centroids.size(); ++k) {
    const double a = edges[k], b = edges[k + 1], c = centroids[k];
    // Over (a, b): integral of z^2 pdf = P + a pdf(a) - b pdf(b); of z pdf = pdf(a) - pdf(b).
    const double probability = normal_interval_probability(a, b);
    const double second_moment = probability + x_times_pdf(a) - x_times_pdf(b);
    const double first_moment = normal_pdf(a) - normal_pdf(b);
    total += second_moment - 2.0 * c * first_moment + c * c * probability;
  }
  return total;
}

const char* codebook_kind_name(CodebookKind kind) {
  switch (kind) {
    case CodebookKind::converged: return "converged";
    case CodebookKind::polarquant_compat: return "polarquant_compat";
    case CodebookKind::uniform: return "uniform";
  }
  return "unknown";
}

}  // namespace hlwq
