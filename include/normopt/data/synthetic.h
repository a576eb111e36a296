#pragma once

/// A built-in, deterministic income data set like the one normopt started
/// from: the main job runs on it when no CSV is given.

#include <normopt/data/csv.h>
#include <normopt/macros.h>

#include <cstdint>

namespace normopt::data {

/// `rows` people: features "age" (22 to 60) and "experience" (whole years,
/// 0 to 20, at most age - 22), target "income" = 20,000 + 300·age +
/// 1,400·experience + N(0, 2,500²) dollars rounded to tens (tens of
/// thousands of dollars, like the original 20-row data). Bit-identical on
/// every platform for a given (rows, seed): it uses its own SplitMix64
/// generator, not torch's RNG.
NORMOPT_API Table synthetic_income(int64_t rows = 20,
                                   uint64_t seed = 0,
                                   c10::ScalarType dtype = at::kFloat);

}  // namespace normopt::data
