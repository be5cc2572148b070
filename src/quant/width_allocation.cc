#include "quant/width_allocation.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <queue>

#include "core/error.h"

namespace hlwq {

namespace {

// The settings on the lower convex hull of (stored bits, error), cheapest first: each next one
// costs more bits and removes error at a falling rate. Settings off the hull are never worth
// taking on the way (a mix of their neighbours on the hull does better per bit).
std::vector<size_t> convex_hull(const std::vector<WidthSetting>& settings) {
  std::vector<size_t> order(settings.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (settings[a].stored_bits != settings[b].stored_bits) return settings[a].stored_bits < settings[b].stored_bits;
    return settings[a].error < settings[b].error;
  });
  std::vector<size_t> hull;
  for (size_t index : order) {
    // A setting that costs more and does not remove error is never an upgrade.
    if (!hull.empty() && settings[index].error >= settings[hull.back()].error) continue;
    // Pop points that lie on or above the segment from their predecessor to this point.
    while (hull.size() >= 2) {
      const WidthSetting& a = settings[hull[hull.size() - 2]];
      const WidthSetting& b = settings[hull.back()];
      const WidthSetting& c = settings[index];
      const double rate_ab = (a.error - b.error) / static_cast<double>(b.stored_bits - a.stored_bits);
      const double rate_ac = (a.error - c.error) / static_cast<double>(c.stored_bits - a.stored_bits);
      if (rate_ab > rate_ac) break;
      hull.pop_back();
    }
    hull.push_back(index);
  }
  return hull;
}

}  // namespace

std::vector<size_t> allocate_widths(std::span<const TensorWidthChoices> tensors, uint64_t budget_bits,
                                    uint64_t weights) {
  std::vector<std::vector<size_t>> hulls;
  std::vector<size_t> position(tensors.size(), 0);  // place on the tensor's hull
  uint64_t spent = 0;
  for (const TensorWidthChoices& tensor : tensors) {
    check(!tensor.settings.empty(), "width allocation: tensor ", tensor.name, " has no settings");
    hulls.push_back(convex_hull(tensor.settings));
    spent += tensor.settings[hulls.back().front()].stored_bits;
  }
  if (spent > budget_bits) {
    if (weights > 0) {
      fail("the size budget of ", static_cast<double>(budget_bits) / static_cast<double>(weights),
           " bits per weight is below the smallest setting's ", static_cast<double>(spent) / static_cast<double>(weights));
    }
    fail("the size budget of ", budget_bits, " bits is below the smallest setting's ", spent);
  }
  struct Step {
    double rate;  // error removed per added bit
    size_t tensor;
    bool operator<(const Step& other) const {
      return rate != other.rate ? rate < other.rate : tensor > other.tensor;  // ties: the earlier tensor
    }
  };
  const auto next_step = [&](size_t t) -> std::optional<Step> {
    const std::vector<size_t>& hull = hulls[t];
    if (position[t] + 1 >= hull.size()) return std::nullopt;
    const WidthSetting& now = tensors[t].settings[hull[position[t]]];
    const WidthSetting& next = tensors[t].settings[hull[position[t] + 1]];
    return Step{(now.error - next.error) / static_cast<double>(next.stored_bits - now.stored_bits), t};
  };
  std::priority_queue<Step> steps;
  for (size_t t = 0; t < tensors.size(); ++t) {
    if (auto step = next_step(t)) steps.push(*step);
  }
  while (!steps.empty()) {
    const Step step = steps.top();
    steps.pop();
    const size_t t = step.tensor;
    const std::vector<size_t>& hull = hulls[t];
    const uint64_t added = tensors[t].settings[hull[position[t] + 1]].stored_bits -
                           tensors[t].settings[hull[position[t]]].stored_bits;
    if (spent + added > budget_bits) continue;  // does not fit: this tensor stays where it is
    spent += added;
    ++position[t];
    if (auto next = next_step(t)) steps.push(*next);
  }
  std::vector<size_t> chosen(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) chosen[t] = hulls[t][position[t]];
  return chosen;
}

std::vector<size_t> allocate_widths_exhaustive(std::span<const TensorWidthChoices> tensors, uint64_t budget_bits) {
  std::vector<size_t> current(tensors.size(), 0), best;
  double best_error = std::numeric_limits<double>::infinity();
  uint64_t best_bits = 0;
  while (true) {
    uint64_t bits = 0;
    double error = 0;
    for (size_t t = 0; t < tensors.size(); ++t) {
      bits += tensors[t].settings[current[t]].stored_bits;
      error += tensors[t].settings[current[t]].error;
    }
    if (bits <= budget_bits && (error < best_error || (error == best_error && bits < best_bits))) {
      best = current;
      best_error = error;
      best_bits = bits;
    }
    size_t t = 0;
    while (t < tensors.size() && ++current[t] == tensors[t].settings.size()) current[t++] = 0;
    if (t == tensors.size()) break;
  }
  check(!best.empty(), "width allocation: no combination fits ", budget_bits, " bits");
  return best;
}

}  // namespace hlwq
