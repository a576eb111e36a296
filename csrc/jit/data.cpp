// The ops normopt::read_csv, normopt::synthetic_income,
// normopt::solve_least_squares and normopt::batches_per_epoch: the C++
// functions of those names for bindings, so Python's normopt.data and
// normopt.train get the one C++ reader, data set, closed form and batch rule.

#include <normopt/data/csv.h>
#include <normopt/data/synthetic.h>
#include <normopt/train/closed_form.h>
#include <normopt/train/fit.h>

#include "../util/library.h"

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace normopt::jit {
namespace {

using TableTuple =
    std::tuple<at::Tensor, at::Tensor, std::vector<std::string>, std::string>;

TableTuple as_tuple(data::Table t) {
  return {std::move(t.features),
          std::move(t.targets),
          std::move(t.feature_names),
          std::move(t.target_name)};
}

TableTuple read_csv_op(const std::string& path,
                       const std::string& target,
                       std::optional<std::vector<std::string>> features,
                       std::optional<c10::ScalarType> dtype,
                       const std::string& delimiter) {
  TORCH_CHECK(delimiter.size() == 1,
              "normopt.data.read_csv: the delimiter must be one character, "
              "got '",
              delimiter,
              "'");
  return as_tuple(data::read_csv(
      path,
      data::CsvOptions()
          .target(target)
          .features(features.value_or(std::vector<std::string>{}))
          .dtype(dtype.value_or(at::kFloat))
          .delimiter(delimiter[0])));
}

TableTuple synthetic_income_op(int64_t rows,
                               int64_t seed,
                               std::optional<c10::ScalarType> dtype) {
  TORCH_CHECK(seed >= 0,
              "normopt.data.synthetic_income: the seed must be >= 0, got ",
              seed);
  return as_tuple(data::synthetic_income(
      rows, static_cast<uint64_t>(seed), dtype.value_or(at::kFloat)));
}

std::tuple<at::Tensor, at::Tensor, double, bool> solve_least_squares_op(
    const at::Tensor& x, const at::Tensor& y, double ridge) {
  auto ls = train::solve_least_squares(x, y, ridge);
  return {std::move(ls.weight), std::move(ls.bias), ls.mse, ls.exact};
}

}  // namespace

NORMOPT_LIBRARY_FRAGMENT(m) {
  m.def(
      "read_csv(str path, str target='', str[]? features=None, "
      "ScalarType? dtype=None, str delimiter=',') "
      "-> (Tensor, Tensor, str[], str)",
      &read_csv_op);
  m.def(
      "synthetic_income(int rows=20, int seed=0, ScalarType? dtype=None) "
      "-> (Tensor, Tensor, str[], str)",
      &synthetic_income_op);
  m.def(
      "solve_least_squares(Tensor x, Tensor y, float ridge=0.) "
      "-> (Tensor, Tensor, float, bool)",
      &solve_least_squares_op);
  m.def("batches_per_epoch(int rows, int batch_size) -> int",
        &train::batches_per_epoch);
}

}  // namespace normopt::jit
