// splitmix64 (Steele, Lea, Flood 2014): one add and three xor-shift-multiply rounds per output;
// good enough statistics for signs, trivially reproducible, and no library whose sequence could change.
#include "quant/random_signs.h"

namespace hlwq {
namespace {

struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

}  // namespace

std::vector<float> random_signs(uint64_t seed, size_t count) {
  SplitMix64 generator{seed};
  std::vector<float> signs(count);
  for (float& sign : signs) sign = (generator.next() >> 63) != 0 ? -1.0f : 1.0f;
  return signs;
}

}  // namespace hlwq
