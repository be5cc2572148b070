// Code widths per tensor for a size budget: `hlwq quantize --target-bpw X` spends a budget of
// stored bits where it removes the most error. Each tensor offers a few settings (a code width, the
// bits it would store, the error it would leave); the allocation picks one per tensor so the total
// stored bits stay within the budget and the summed error is small.
//
// The method: start every tensor at its cheapest setting, then repeatedly take the upgrade that
// removes the most error per added bit, over each tensor's lower convex hull of (bits, error) so a
// step that pays off only after a worse one is seen whole. Upgrades that no longer fit are
// dropped. This is the classic greedy for a separable convex budget problem: exact at every budget
// the chosen steps exhaust, and otherwise short of the optimum by at most one step's gain.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hlwq {

struct WidthSetting {
  int bits = 0;                 // code width
  uint64_t stored_bits = 0;     // every bit the tensor would store at this width (codes and gains)
  double error = 0;             // the error it would leave (any unit shared by all tensors; smaller is better)
};

struct TensorWidthChoices {
  std::string name;
  std::vector<WidthSetting> settings;  // at least one; any order
};

// One setting index per tensor (into its `settings`). Throws hlwq::Error when even the cheapest
// settings exceed budget_bits (the message gives both, in bits per weight when weights > 0).
std::vector<size_t> allocate_widths(std::span<const TensorWidthChoices> tensors, uint64_t budget_bits,
                                    uint64_t weights = 0);

// Plain, obviously correct search for tests: every combination of settings, the least total error
// within the budget (ties: fewer bits). Exponential; for a handful of tensors only.
std::vector<size_t> allocate_widths_exhaustive(std::span<const TensorWidthChoices> tensors, uint64_t budget_bits);

}  // namespace hlwq
