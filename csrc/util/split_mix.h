#pragma once

// SplitMix64 (Steele, Lea, Flood 2014): normopt's one seeded generator for
// what must be the same on every platform and LibTorch version (data
// splits, synthetic data). Tiny and fixed: not for cryptography.

#include <cmath>
#include <cstdint>
#include <limits>

namespace normopt::util {

struct SplitMix64 {
  uint64_t state;

  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform integer in [0, bound), bound > 0, without modulo bias.
  uint64_t below(uint64_t bound) {
    const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                           std::numeric_limits<uint64_t>::max() % bound;
    uint64_t r = next();
    while (r >= limit) {
      r = next();
    }
    return r % bound;
  }
  // Uniform double in [0, 1), with 53 random bits.
  double uniform() {
    return static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  // Standard normal (Box-Muller).
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
};

}  // namespace normopt::util
