#pragma once

/// normopt's scalers as TorchScript custom classes, usable from Python and
/// from scripted code once the library is loaded:
///
/// \code{.py}
///   torch.ops.load_library("build/libnormopt.so")
///   norm = torch.classes.normopt.Normalization([-1], 1e-7)
///   norm.adapt(x_train)
///   z = norm.forward(x)                  # (x - mean) / scale
///
///   class Model(torch.nn.Module):
///       def __init__(self, norm):
///           super().__init__()
///           self.norm = norm             # saved with the module
///       def forward(self, x):
///           return self.norm.forward(x)
///   torch.jit.save(torch.jit.script(Model(norm)), "model.pt")
/// \endcode
///
/// TorchScript API (every method calls the C++ module, so results and error
/// messages are the C++ ones; errors reach Python as RuntimeError):
///
/// - `Normalization(axis: List[int] = [-1], eps: float = 1e-7,
///   invert: bool = False)`: `adapt(x)`, `update(batch)`,
///   `reset_statistics()`, `forward(x)`, `inverse(x)`, `mean()`,
///   `variance()`, `scale()`, `count() -> int`, `is_adapted() -> bool`,
///   `axis() -> List[int]`, `eps() -> float`, `invert() -> bool`.
/// - `TargetStandardizer(method: str = "zscore", eps: float = 1e-7)`, method
///   one of "zscore", "minmax", "none": `fit(y)`, `transform(y)`,
///   `inverse_transform(z)`, `forward(y)` (= transform), `loc()`, `scale()`,
///   `count() -> int`, `is_fitted() -> bool`, `method() -> str`,
///   `eps() -> float`.
///
/// Statistics getters return copies (float64 CPU tensors; shape [0] before
/// adapt/fit), so statistics change only through adapt/update/fit.
/// Both classes pickle (torch.jit.save/load, copy.deepcopy) as a versioned
/// tuple of their options and statistics. Objects are not synchronized: do not
/// adapt one from two threads at once.

#include <normopt/macros.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/target_standardizer.h>

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace normopt::jit {

/// The pickled state of a Normalization object:
/// (version, (axis, eps, invert), (mean, variance, count)).
using NormalizationState =
    std::tuple<int64_t,
               std::tuple<std::vector<int64_t>, double, bool>,
               std::tuple<at::Tensor, at::Tensor, int64_t>>;

/// The pickled state of a TargetStandardizer object:
/// (version, (method, eps), (loc, scale, count)).
using TargetStandardizerState =
    std::tuple<int64_t,
               std::tuple<std::string, double>,
               std::tuple<at::Tensor, at::Tensor, int64_t>>;

/// `torch.classes.normopt.Normalization`: a handle on an
/// nn::Normalization module.
class NORMOPT_API NormalizationHolder : public torch::CustomClassHolder {
 public:
  /// A fresh layer with these options (statistics learned by adapt()).
  NormalizationHolder(std::vector<int64_t> axis, double eps, bool invert);
  /// Shares `module` (no copy): a C++ program can hand an adapted layer to
  /// scripted code.
  explicit NormalizationHolder(nn::Normalization module);

  void adapt(const at::Tensor& x);
  void update(const at::Tensor& batch);
  void reset_statistics();
  at::Tensor forward(const at::Tensor& x);
  at::Tensor inverse(const at::Tensor& x);
  at::Tensor mean() const;
  at::Tensor variance() const;
  at::Tensor scale() const;
  int64_t count() const;
  bool is_adapted() const;
  std::vector<int64_t> axis() const;
  double eps() const;
  bool invert() const;

  /// Options and statistics, for __getstate__.
  NormalizationState state() const;
  /// Rebuilds a layer from state(); checks the version and the shapes.
  static c10::intrusive_ptr<NormalizationHolder> from_state(
      NormalizationState state);

  /// The wrapped module.
  nn::Normalization module;
};

/// `torch.classes.normopt.TargetStandardizer`: a handle on an
/// nn::TargetStandardizer module.
class NORMOPT_API TargetStandardizerHolder : public torch::CustomClassHolder {
 public:
  /// `method` is "zscore", "minmax" or "none".
  TargetStandardizerHolder(const std::string& method, double eps);
  /// Shares `module` (no copy).
  explicit TargetStandardizerHolder(nn::TargetStandardizer module);

  void fit(const at::Tensor& y);
  at::Tensor transform(const at::Tensor& y) const;
  at::Tensor inverse_transform(const at::Tensor& z) const;
  at::Tensor loc() const;
  at::Tensor scale() const;
  int64_t count() const;
  bool is_fitted() const;
  std::string method() const;
  double eps() const;

  /// Options and statistics, for __getstate__.
  TargetStandardizerState state() const;
  /// Rebuilds a standardizer from state(); checks the version and shapes.
  static c10::intrusive_ptr<TargetStandardizerHolder> from_state(
      TargetStandardizerState state);

  /// The wrapped module.
  nn::TargetStandardizer module;
};

}  // namespace normopt::jit
