#include <normopt/data/synthetic.h>

#include "../util/split_mix.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace normopt::data {
Table synthetic_income(int64_t rows, uint64_t seed, c10::ScalarType dtype) {
  TORCH_CHECK(rows > 0, "synthetic_income: rows must be positive, got ", rows);
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
              "synthetic_income: dtype must be float32 or float64, got ",
              dtype);
  util::SplitMix64 rng{seed};
  std::vector<double> x(rows * 2), y(rows);
  for (int64_t i = 0; i < rows; ++i) {
    const double age = std::floor(22 + 39 * rng.uniform());  // 22..60
    const double max_exp = std::min(age - 22, 20.0);
    const double exp = std::floor((max_exp + 1) * rng.uniform());
    const double income = 20000 + 300 * age + 1400 * exp + 2500 * rng.normal();
    x[2 * i] = age;
    x[2 * i + 1] = exp;
    y[i] = std::round(income / 10) * 10;
  }
  Table t;
  t.features = at::tensor(x, at::kDouble).reshape({rows, 2}).to(dtype);
  t.targets = at::tensor(y, at::kDouble).reshape({rows, 1}).to(dtype);
  t.feature_names = {"age", "experience"};
  t.target_name = "income";
  return t;
}

}  // namespace normopt::data
