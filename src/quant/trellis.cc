// Bitshift trellis codes (quant/trellis.h): the computed codebook, the Viterbi encoder (SIMD over
// states with Highway's dynamic dispatch, and the plain scalar reference) and the decoder.
#include "quant/trellis.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "quant/lloyd_max.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/trellis.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace hlwq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// next[s] = group_best[s >> k] + (x - codebook[s])^2 for every state, with vectors of d's lanes
// (at most `branches`, the states of a group, which share group_best); returns the states done.
template <class D>
HWY_INLINE size_t AddBranchCosts(D d, const float* HWY_RESTRICT codebook, const float* HWY_RESTRICT group_best,
                                 float x, size_t states, size_t branches, float* HWY_RESTRICT next) {
  const size_t lanes = hn::Lanes(d);
  const auto x_vector = hn::Set(d, x);
  size_t s = 0;
  for (size_t group = 0; s < states; ++group) {
    const auto base = hn::Set(d, group_best[group]);
    for (size_t j = 0; j < branches; j += lanes, s += lanes) {
      const auto difference = hn::Sub(x_vector, hn::LoadU(d, codebook + s));
      hn::StoreU(hn::Add(base, hn::Mul(difference, difference)), d, next + s);
    }
  }
  return s;
}

// The Viterbi recursion over values[0..n): on return cost[s] is the least squared error of a walk
// ending in state s, and choice[(t - 1) * groups + g] the top k bits of the best predecessor of the
// states of group g (state >> k == g) at step t. The same comparisons and roundings as the scalar
// reference (strict less-than in branch order, d * d added without fusing), so the walks are equal.
void ViterbiForward(const float* HWY_RESTRICT codebook, const float* HWY_RESTRICT values, size_t n, int state_bits,
                    int bits_per_value, float* HWY_RESTRICT cost, float* HWY_RESTRICT next,
                    float* HWY_RESTRICT group_best, uint8_t* HWY_RESTRICT choice) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const size_t lanes = hn::Lanes(d);
  const size_t states = size_t{1} << state_bits, groups = size_t{1} << (state_bits - bits_per_value);
  const size_t branches = size_t{1} << bits_per_value;
  const size_t branch_stride = groups;  // predecessor h of group g is g | h << (L - k) = g + h * groups
  for (size_t s = 0; s < states; ++s) {
    const float difference = values[0] - codebook[s];
    cost[s] = difference * difference;
  }
  for (size_t t = 1; t < n; ++t) {
    uint8_t* chosen = choice + (t - 1) * groups;
    size_t g = 0;
    if (groups >= lanes) {
      for (; g + lanes <= groups; g += lanes) {
        auto best = hn::LoadU(d, cost + g);
        auto best_h = hn::Zero(di);
        for (size_t h = 1; h < branches; ++h) {
          const auto candidate = hn::LoadU(d, cost + h * branch_stride + g);
          const auto better = hn::Lt(candidate, best);
          best = hn::IfThenElse(better, candidate, best);
          best_h = hn::IfThenElse(hn::RebindMask(di, better), hn::Set(di, static_cast<int32_t>(h)), best_h);
        }
        hn::StoreU(best, d, group_best + g);
        hn::StoreU(hn::DemoteTo(du8, best_h), du8, chosen + g);
      }
    }
    for (; g < groups; ++g) {
      float best = cost[g];
      uint8_t best_h = 0;
      for (size_t h = 1; h < branches; ++h) {
        const float c = cost[g + h * branch_stride];
        if (c < best) best = c, best_h = static_cast<uint8_t>(h);
      }
      group_best[g] = best;
      chosen[g] = best_h;
    }
    const float x = values[t];
    size_t s = 0;
    // next[s] = group_best[s >> k] + (x - codebook[s])^2: vectors of whole groups of branches.
    if (branches >= lanes) {
      s = AddBranchCosts(d, codebook, group_best, x, states, branches, next);
    } else if (branches >= 8 && lanes >= 8) {
      s = AddBranchCosts(hn::CappedTag<float, 8>(), codebook, group_best, x, states, branches, next);
    } else if (branches >= 4 && lanes >= 4) {
      s = AddBranchCosts(hn::CappedTag<float, 4>(), codebook, group_best, x, states, branches, next);
    }
    for (; s < states; ++s) {
      const float difference = x - codebook[s];
      next[s] = group_best[s >> bits_per_value] + difference * difference;
    }
    std::swap(cost, next);
  }
  // After an odd number of steps the local pointers are exchanged: the result goes back to the
  // caller's `cost` (which `next` now points to).
  if ((n - 1) % 2 == 1) std::copy(cost, cost + states, next);
}

}  // namespace HWY_NAMESPACE
}  // namespace hlwq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace hlwq {
namespace {

// A bijection of [0, 2^bits): odd multiplications modulo 2^bits and xor-shifts to the right, each
// invertible. Used only to scatter the quantiles over the states.
uint32_t scatter_state(uint32_t state, int bits) {
  const uint32_t mask = bits == 32 ? ~0u : (1u << bits) - 1;
  uint32_t h = state & mask;
  h = (h * 0x9E3779B1u) & mask;
  h ^= h >> ((bits + 1) / 2);
  h = (h * 0x85EBCA77u) & mask;
  h ^= h >> (bits / 2 + 1);
  h = (h * 0xC2B2AE3Du) & mask;
  h ^= h >> ((bits + 1) / 2);
  return h;
}

// The walk that ends in the cheapest state, traced back through the recorded choices.
TrellisWalk trace_back(const TrellisParams& params, std::span<const float> cost, std::span<const uint8_t> choice,
                       size_t n) {
  const int L = params.state_bits, k = params.bits_per_value;
  const size_t groups = size_t{1} << (L - k), branches = size_t{1} << k;
  uint32_t state = static_cast<uint32_t>(std::min_element(cost.begin(), cost.end()) - cost.begin());
  TrellisWalk walk;
  walk.steps.resize(n - 1);
  for (size_t t = n - 1; t >= 1; --t) {
    walk.steps[t - 1] = static_cast<uint8_t>(state & (branches - 1));
    const uint32_t group = state >> k;
    state = group | (static_cast<uint32_t>(choice[(t - 1) * groups + group]) << (L - k));
  }
  walk.first_state = state;
  return walk;
}

}  // namespace

HWY_EXPORT(ViterbiForward);

void check_trellis_params(const TrellisParams& params) {
  check(params.bits_per_value >= 1 && params.bits_per_value <= 8, "trellis bits per value must be 1..8, got ",
        params.bits_per_value);
  check(params.state_bits > params.bits_per_value && params.state_bits <= 20,
        "trellis state bits must be more than the bits per value and at most 20, got ", params.state_bits);
}

std::vector<float> trellis_codebook(int state_bits) {
  check(state_bits >= 2 && state_bits <= 20, "trellis state bits must be 2..20, got ", state_bits);
  const uint32_t states = 1u << state_bits;
  std::vector<float> codebook(states);
  for (uint32_t state = 0; state < states; ++state) {
    const double p = (static_cast<double>(scatter_state(state, state_bits)) + 0.5) / states;
    codebook[state] = static_cast<float>(normal_quantile(p));
  }
  return codebook;
}

TrellisWalk trellis_encode(const TrellisParams& params, std::span<const float> codebook, std::span<const float> values,
                           std::vector<float>* end_costs) {
  check_trellis_params(params);
  const int L = params.state_bits, k = params.bits_per_value;
  const size_t states = size_t{1} << L, groups = size_t{1} << (L - k);
  check(codebook.size() == states, "trellis codebook must hold 2^", L, " values, got ", codebook.size());
  check(!values.empty(), "trellis encode needs at least one value");
  const size_t n = values.size();
  std::vector<float> cost(states), next(states), group_best(groups);
  std::vector<uint8_t> choice((n - 1) * groups);
  HWY_DYNAMIC_DISPATCH(ViterbiForward)(codebook.data(), values.data(), n, L, k, cost.data(), next.data(),
                                       group_best.data(), choice.data());
  if (end_costs != nullptr) *end_costs = cost;
  return trace_back(params, cost, choice, n);
}

TrellisWalk trellis_encode_reference(const TrellisParams& params, std::span<const float> codebook,
                                     std::span<const float> values, std::vector<float>* end_costs) {
  check_trellis_params(params);
  const int L = params.state_bits, k = params.bits_per_value;
  const size_t states = size_t{1} << L, groups = size_t{1} << (L - k), branches = size_t{1} << k;
  check(codebook.size() == states, "trellis codebook must hold 2^", L, " values, got ", codebook.size());
  check(!values.empty(), "trellis encode needs at least one value");
  const size_t n = values.size();
  // cost[s]: the least squared error of a walk over the values so far that ends in state s.
  std::vector<float> cost(states), next(states), group_best(groups);
  for (size_t s = 0; s < states; ++s) {
    const float d = values[0] - codebook[s];
    cost[s] = d * d;
  }
  // choice[t - 1][g]: the top k bits h of the best predecessor g | h << (L - k) of the states of
  // group g (state >> k == g) at step t.
  std::vector<uint8_t> choice((n - 1) * groups);
  for (size_t t = 1; t < n; ++t) {
    uint8_t* chosen = choice.data() + (t - 1) * groups;
    for (size_t g = 0; g < groups; ++g) {
      float best = cost[g];
      uint8_t best_h = 0;
      for (size_t h = 1; h < branches; ++h) {
        const float c = cost[g | (h << (L - k))];
        if (c < best) best = c, best_h = static_cast<uint8_t>(h);
      }
      group_best[g] = best;
      chosen[g] = best_h;
    }
    const float x = values[t];
    for (size_t s = 0; s < states; ++s) {
      const float d = x - codebook[s];
      next[s] = group_best[s >> k] + d * d;
    }
    cost.swap(next);
  }
  if (end_costs != nullptr) *end_costs = cost;
  return trace_back(params, cost, choice, n);
}

void trellis_decode(const TrellisParams& params, std::span<const float> codebook, const TrellisWalk& walk,
                    std::span<float> out) {
  check_trellis_params(params);
  const uint32_t mask = (1u << params.state_bits) - 1;
  check(codebook.size() == size_t{mask} + 1, "trellis codebook must hold 2^", params.state_bits, " values");
  check(out.size() == walk.steps.size() + 1, "trellis decode: ", walk.steps.size() + 1, " values, room for ",
        out.size());
  uint32_t state = walk.first_state & mask;
  out[0] = codebook[state];
  for (size_t t = 0; t < walk.steps.size(); ++t) {
    state = ((state << params.bits_per_value) | walk.steps[t]) & mask;
    out[t + 1] = codebook[state];
  }
}

int64_t trellis_walk_bits(const TrellisParams& params, int64_t values) {
  check_trellis_params(params);
  return values <= 0 ? 0 : params.state_bits + (values - 1) * params.bits_per_value;
}

}  // namespace hlwq
#endif  // HWY_ONCE
