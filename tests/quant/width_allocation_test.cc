// The budgeted width allocation against the exhaustive search, on fresh random problems shaped like
// real ones (error falling about 4x a bit, per-tensor factors, blocks' gain bits).
#include "quant/width_allocation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace hlwq {
namespace {

uint64_t total_bits(const std::vector<TensorWidthChoices>& tensors, const std::vector<size_t>& chosen) {
  uint64_t bits = 0;
  for (size_t t = 0; t < tensors.size(); ++t) bits += tensors[t].settings[chosen[t]].stored_bits;
  return bits;
}

double total_error(const std::vector<TensorWidthChoices>& tensors, const std::vector<size_t>& chosen) {
  double error = 0;
  for (size_t t = 0; t < tensors.size(); ++t) error += tensors[t].settings[chosen[t]].error;
  return error;
}

// Tensors of random sizes whose error at b bits is factor x 4^-b x (1 +- 20% noise), stored with a
// 16-bit gain per block of 128: the shape of HLWQ's measured errors, with room for non-convexity.
std::vector<TensorWidthChoices> random_problem(std::mt19937& generator, int tensor_count) {
  std::uniform_int_distribution<int> rows(1, 8);
  std::uniform_real_distribution<double> factor(0.2, 5.0), noise(0.8, 1.2);
  std::vector<TensorWidthChoices> tensors;
  for (int t = 0; t < tensor_count; ++t) {
    TensorWidthChoices tensor{"t" + std::to_string(t), {}};
    const uint64_t weights = 128 * static_cast<uint64_t>(rows(generator));
    const double scale = factor(generator) * static_cast<double>(weights);
    for (int bits = 2; bits <= 6; ++bits) {
      tensor.settings.push_back({bits, weights * bits + weights / 128 * 16, scale * std::pow(4.0, -bits) * noise(generator)});
    }
    std::shuffle(tensor.settings.begin(), tensor.settings.end(), generator);
    tensors.push_back(tensor);
  }
  return tensors;
}

TEST(WidthAllocation, StaysWithinTheBudgetAndNearTheExhaustiveOptimum) {
  const uint32_t seed = std::random_device{}();
  std::mt19937 generator(seed);
  int exact = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<TensorWidthChoices> tensors = random_problem(generator, 5);
    uint64_t cheapest = 0, dearest = 0;
    double largest_step = 0;  // the most error any one upgrade removes
    for (const TensorWidthChoices& tensor : tensors) {
      uint64_t low = UINT64_MAX, high = 0;
      for (const WidthSetting& setting : tensor.settings) {
        low = std::min(low, setting.stored_bits);
        high = std::max(high, setting.stored_bits);
      }
      cheapest += low;
      dearest += high;
      for (const WidthSetting& a : tensor.settings) {
        for (const WidthSetting& b : tensor.settings) largest_step = std::max(largest_step, a.error - b.error);
      }
    }
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(cheapest, dearest)(generator);
    const std::vector<size_t> greedy = allocate_widths(tensors, budget);
    const std::vector<size_t> best = allocate_widths_exhaustive(tensors, budget);
    ASSERT_LE(total_bits(tensors, greedy), budget) << "seed " << seed << " trial " << trial;
    // Greedy on convex hulls is short of the optimum by at most one upgrade's gain.
    EXPECT_LE(total_error(tensors, greedy), total_error(tensors, best) + largest_step + 1e-9)
        << "seed " << seed << " trial " << trial;
    exact += total_error(tensors, greedy) <= total_error(tensors, best) * (1 + 1e-12);
  }
  // Most budgets land on the optimum itself; the bound above is the worst case.
  EXPECT_GE(exact, 100) << "seed " << seed;
  std::printf("    greedy equal to the exhaustive optimum in %d of 200 random problems\n", exact);
}

TEST(WidthAllocation, TakesTheCheapestWhenTheBudgetIsTightAndTheBestWhenItIsNot) {
  std::mt19937 generator(std::random_device{}());
  const std::vector<TensorWidthChoices> tensors = random_problem(generator, 4);
  uint64_t cheapest = 0, dearest = 0;
  for (const TensorWidthChoices& tensor : tensors) {
    uint64_t low = UINT64_MAX, high = 0;
    for (const WidthSetting& setting : tensor.settings) {
      low = std::min(low, setting.stored_bits);
      high = std::max(high, setting.stored_bits);
    }
    cheapest += low;
    dearest += high;
  }
  const std::vector<size_t> tight = allocate_widths(tensors, cheapest);
  const std::vector<size_t> loose = allocate_widths(tensors, dearest);
  for (size_t t = 0; t < tensors.size(); ++t) {
    EXPECT_EQ(tensors[t].settings[tight[t]].bits, 2);
    EXPECT_EQ(tensors[t].settings[loose[t]].bits, 6);  // error falls with every bit here
  }
}

TEST(WidthAllocation, JumpsOverASettingThatPaysOffOnlyWithTheNext) {
  // 3 bits barely helps, 4 bits helps a lot: the hull goes 2 -> 4, and a budget for 4 bits takes it.
  const std::vector<TensorWidthChoices> tensors = {
      {"a", {{2, 200, 100.0}, {3, 300, 99.0}, {4, 400, 1.0}}},
      {"b", {{2, 200, 50.0}, {3, 300, 30.0}, {4, 400, 20.0}}},
  };
  const std::vector<size_t> chosen = allocate_widths(tensors, 600);
  EXPECT_EQ(tensors[0].settings[chosen[0]].bits, 4);
  EXPECT_EQ(tensors[1].settings[chosen[1]].bits, 2);
  EXPECT_EQ(chosen, allocate_widths_exhaustive(tensors, 600));
}

TEST(WidthAllocation, RefusesABudgetBelowTheCheapestSettings) {
  const std::vector<TensorWidthChoices> tensors = {{"a", {{2, 256, 1.0}, {4, 512, 0.1}}}};
  EXPECT_EQ(error_message([&] { allocate_widths(tensors, 255, 128); }),
            "the size budget of 1.99219 bits per weight is below the smallest setting's 2");
  EXPECT_EQ(error_message([&] { allocate_widths(std::vector<TensorWidthChoices>{{"b", {}}}, 100); }),
            "width allocation: tensor b has no settings");
}

}  // namespace
}  // namespace hlwq
