#pragma once

/// Target scaling for regression: fit on training targets, train on
/// transform(y), map predictions back with inverse_transform().
///
/// \code
///   normopt::nn::TargetStandardizer ts;
///   ts->fit(y_train);                              // y: (N) or (N, k)
///   auto loss = mse(model(x), ts->transform(y));   // unit-free loss
///   auto dollars = ts->inverse_transform(model(x_new));
/// \endcode

#include <normopt/data/stream.h>
#include <normopt/macros.h>
#include <normopt/nn/counted_module.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <string>

namespace normopt::nn {

/// How TargetStandardizer maps targets.
enum class TargetScaling {
  /// (y - mean) / std, std the population standard deviation.
  kZScore,
  /// (y - min) / (max - min), into [0, 1].
  kMinMax,
  /// Identity (loc 0, scale 1): train on raw targets, e.g. to show what
  /// standardizing buys.
  kNone,
};

/// The method's name, "zscore", "minmax" or "none": in Python, TorchScript,
/// printouts and messages.
NORMOPT_API const char* method_name(TargetScaling method);

/// The method named `name` ("zscore", "minmax" or "none"); c10::Error naming
/// the three otherwise. `where` starts the message.
NORMOPT_API TargetScaling method_from_name(const std::string& name,
                                           const char* where);

/// Options for `TargetStandardizer`.
struct NORMOPT_API TargetStandardizerOptions {
  /// The mapping; read by fit(), so changing it takes effect at the next fit.
  TORCH_ARG(TargetScaling, method) = TargetScaling::kZScore;
  /// Smallest divisor for a non-constant target; constant targets get 1.
  TORCH_ARG(double, eps) = 1e-7;
};

/// Affine target scaling y -> (y - loc) / scale with float64 statistics kept
/// as buffers (`loc`, `scale`, `count`), so they live in the state_dict and
/// in every checkpoint of a model holding it. Statistics are per column of a
/// (N, k) target, or scalars for a (N) target.
class NORMOPT_API TargetStandardizerImpl
    : public CountedModule<TargetStandardizerImpl> {
 public:
  explicit TargetStandardizerImpl(TargetStandardizerOptions options_ = {});

  void reset() override;

  /// Learns loc and scale from targets `y` of shape (N) or (N, k).
  void fit(const at::Tensor& y);

  /// Learns loc and scale from the targets of every part of `stream`, read
  /// once from its start (rewind() first): the statistics of the whole data
  /// (float64, merged part by part), as fit() on all of it at once. Throws
  /// what the stream throws, and when it yields no rows; the old statistics
  /// are kept on any error.
  void fit(data::TableStream& stream);

  /// Fits z-score (or identity) scaling from moments computed elsewhere
  /// (count, mean and M2 per column, as ops::moments returns): fit()'s second
  /// half, for statistics merged across processes (normopt::distributed).
  void fit_moments(const at::Tensor& count,
                   const at::Tensor& mean,
                   const at::Tensor& m2);

  /// Fits min-max scaling from a per-column range computed elsewhere.
  void fit_range(const at::Tensor& count,
                 const at::Tensor& min,
                 const at::Tensor& max);

  /// (y - loc) / scale, in y's dtype.
  at::Tensor transform(const at::Tensor& y) const;

  /// z * scale + loc: standardized values back to original units.
  at::Tensor inverse_transform(const at::Tensor& z) const;

  /// Same as transform().
  at::Tensor forward(const at::Tensor& y);

  /// Whether fit() (or a load) has set the statistics.
  bool is_fitted() const;

  /// Checks shapes against the checkpoint before loading.
  void load(torch::serialize::InputArchive& archive) override;

  void pretty_print(std::ostream& stream) const override;

  /// The options this module was built with.
  TargetStandardizerOptions options;
  /// Offset subtracted from targets: the mean (z-score) or the minimum.
  at::Tensor loc;
  /// Divisor: the standard deviation (z-score) or max - min; 1 for constant
  /// targets.
  at::Tensor scale;
  /// Number of targets fitted on (int64 scalar).
  at::Tensor count;

 private:
  void check_ready(const at::Tensor& t, const char* where) const;
  void set(const at::Tensor& loc,
           const at::Tensor& scale,
           const at::Tensor& count);
};

/// A ModuleHolder for TargetStandardizerImpl.
TORCH_MODULE(TargetStandardizer);

}  // namespace normopt::nn
