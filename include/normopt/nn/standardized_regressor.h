#pragma once

/// A regressor that trains in standardized space and predicts in original
/// units (scikit-learn's TransformedTargetRegressor with input scaling, as one
/// torch::nn module and one checkpoint).
///
/// \code
///   using namespace normopt::nn;
///   StandardizedRegressor model(LinearRegressor(2));
///   model->fit_statistics(x_train, y_train);        // adapt both scalers
///   auto loss = torch::mse_loss(model(x), model->transform_targets(y));
///   ...                                             // train any optimizer
///   auto dollars = model->predict(x_new);           // original units
///   torch::save(model, "model.pt");                 // all three parts
/// \endcode
///
/// Which initialisation to pair with it: once targets are standardized their
/// mean is 0, so "bias at the target mean" is simply a zero bias and matters
/// little; the examples use LinearRegressor's default (kTorch) initialiser.
/// On raw targets the bias-at-mean option (LinearRegressorOptions::bias_init)
/// is what removes most of the distance Adam would otherwise have to travel.

#include <normopt/data/stream.h>
#include <normopt/macros.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/target_standardizer.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <optional>
#include <ostream>

namespace normopt::nn {

/// Options for `StandardizedRegressor`, read at construction.
struct NORMOPT_API StandardizedRegressorOptions {
  /// Options of the input Normalization (features along the last dim by
  /// default).
  TORCH_ARG(NormalizationOptions, inputs) = NormalizationOptions();
  /// Options of the TargetStandardizer (z-score by default).
  TORCH_ARG(TargetStandardizerOptions, targets) = TargetStandardizerOptions();
};

/// Input Normalization -> any regressor -> TargetStandardizer, registered as
/// submodules `normalization`, `regressor` and `target`.
class NORMOPT_API StandardizedRegressorImpl : public torch::nn::Module {
 public:
  /// Wraps `regressor`, any module with `Tensor forward(Tensor)`.
  explicit StandardizedRegressorImpl(
      torch::nn::AnyModule regressor,
      StandardizedRegressorOptions options_ = {});

  /// Convenience: `StandardizedRegressor(LinearRegressor(3))`.
  template <typename ModuleType>
  explicit StandardizedRegressorImpl(
      const torch::nn::ModuleHolder<ModuleType>& regressor,
      StandardizedRegressorOptions options_ = {})
      : StandardizedRegressorImpl(torch::nn::AnyModule(regressor),
                                  std::move(options_)) {}

  /// Adapts the input Normalization on `x` and fits the TargetStandardizer
  /// on `y`.
  void fit_statistics(const at::Tensor& x, const at::Tensor& y);

  /// Both statistics from one pass over `stream` from its start (rewind()
  /// first): the input Normalization's and the TargetStandardizer's, those
  /// of the whole data, as fit_statistics(x, y) on all of it at once. For
  /// data larger than memory (data::CsvReader). On any error (the stream's,
  /// or no rows) both keep their old statistics.
  void fit_statistics(data::TableStream& stream);

  /// Standardized predictions, regressor(normalization(x)): what the
  /// training loss compares with transform_targets(y).
  at::Tensor forward(const at::Tensor& x);

  /// Predictions in the targets' original units.
  at::Tensor predict(const at::Tensor& x);

  /// Targets in standardized units, for the loss.
  at::Tensor transform_targets(const at::Tensor& y) const;

  /// Deep copy: statistics, parameters and options.
  std::shared_ptr<torch::nn::Module> clone(
      const std::optional<at::Device>& device = std::nullopt) const override;

  /// Checks every shape against the checkpoint before loading anything.
  void load(torch::serialize::InputArchive& archive) override;

  void pretty_print(std::ostream& stream) const override;

  /// The regressor as a plain module (for its parameters()).
  std::shared_ptr<torch::nn::Module> regressor_module() const;

  /// The options this module was built with.
  StandardizedRegressorOptions options;
  /// Input scaling.
  Normalization normalization{nullptr};
  /// Target scaling.
  TargetStandardizer target{nullptr};
  /// The wrapped model.
  torch::nn::AnyModule regressor;
};

/// A ModuleHolder for StandardizedRegressorImpl.
TORCH_MODULE(StandardizedRegressor);

}  // namespace normopt::nn
