#pragma once

/// Keras-style feature normalization for torch::nn.
///
/// \code
///   normopt::nn::Normalization norm;           // features along the last dim
///   norm->adapt(x_train);                      // exact mean and variance
///   auto z = norm(x_batch);                    // (x - mean) / scale
///   auto x_back = norm->inverse(z);
///   for (auto& b : batches) norm->update(b);   // or stream over batches
/// \endcode

#include <normopt/data/stream.h>
#include <normopt/macros.h>
#include <normopt/nn/counted_module.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <ostream>
#include <tuple>
#include <vector>

namespace normopt::nn {

/// Options for `Normalization`.
struct NORMOPT_API NormalizationOptions {
  /// The feature dimension(s): statistics are kept per index along these
  /// dims and reduced over all others (Keras's `axis`). Negative values count
  /// from the end of each input. Empty means one scalar mean and variance for
  /// the whole tensor. Changing it after adapt() invalidates the statistics.
  TORCH_ARG(std::vector<int64_t>, axis) = std::vector<int64_t>{-1};
  /// Smallest scale a non-constant feature is divided by (Keras's epsilon).
  /// Constant features get scale 1 regardless.
  TORCH_ARG(double, eps) = 1e-7;
  /// When true, forward() maps standardized values back to original units
  /// and inverse() standardizes (Keras's `invert=True`).
  TORCH_ARG(bool, invert) = false;
  /// Fixed mean (shape of the feature dims). Given together with `variance`,
  /// the layer needs no adapt() and refuses one. Read at construction/reset().
  TORCH_ARG(std::optional<at::Tensor>, mean) = std::nullopt;
  /// Fixed population variance, non-negative, same shape as `mean`.
  TORCH_ARG(std::optional<at::Tensor>, variance) = std::nullopt;
};

/// Standardizes features: forward(x) = (x - mean) / scale with per-feature
/// statistics learned by adapt()/update() and kept as buffers (`mean`,
/// `variance`, `count`), so torch::save/torch::load and .to(device, dtype)
/// carry them. Statistics are computed exactly in float64 and stored in
/// float64 until the module is converted with .to(dtype).
class NORMOPT_API NormalizationImpl : public CountedModule<NormalizationImpl> {
 public:
  explicit NormalizationImpl(NormalizationOptions options_ = {});

  /// Re-creates the buffers from `options` (fixed statistics or none).
  void reset() override;

  /// Replaces the statistics with those of `x` (mean and population
  /// variance over every dim except `axis`).
  void adapt(const at::Tensor& x);

  /// Replaces the statistics with those of the union of `batches`, merged in
  /// a stream; equal to adapt() on their concatenation.
  void adapt(const std::vector<at::Tensor>& batches);

  /// Replaces the statistics with those of the features of every part of
  /// `stream`, read once from its start (rewind() first): one pass, the
  /// statistics of the whole data (float64, merged part by part), as
  /// adapt() on all of it at once; for data larger than memory
  /// (data::CsvReader). Throws what the stream throws, and when it yields no
  /// rows; the old statistics are kept on any error.
  void adapt(data::TableStream& stream);

  /// Merges the statistics of one more batch into the current ones (Chan et
  /// al.'s parallel formula, in float64). On an un-adapted layer this is
  /// adapt(batch). Each batch itself is exact (two passes); across N merges
  /// the running mean carries float64 rounding, which reaches the variance
  /// as about sqrt(N) eps |mean| / std relative: 1.4e-12 for 1,000
  /// single-row batches of data with |mean| / std = 8,000, below 1e-14 for
  /// batches of 128 or data near zero mean.
  void update(const at::Tensor& batch);

  /// Sample count, per-feature mean and M2 of `batch` along this layer's
  /// axis (ops::moments), checked like update()'s input. With merge(), the
  /// two halves of update(): computing moments where the data is and
  /// merging them elsewhere (e.g. across processes, normopt::distributed).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> moments_of(
      const at::Tensor& batch) const;

  /// Merges moments of more data (count, mean, M2 as moments_of returns)
  /// into the statistics; a count of 0 changes nothing.
  void merge(const at::Tensor& count,
             const at::Tensor& mean,
             const at::Tensor& m2);

  /// Drops learned statistics (fixed ones from the options are restored).
  void reset_statistics();

  /// Standardizes `x` (or de-standardizes it when `invert` is set).
  at::Tensor forward(const at::Tensor& x);

  /// The inverse of forward().
  at::Tensor inverse(const at::Tensor& x);

  /// The per-feature divisor: sqrt(variance) floored at eps, 1 for constant
  /// features. Derived from the buffers on each call.
  at::Tensor scale() const;

  /// Whether statistics are available (adapted, loaded, or fixed).
  bool is_adapted() const;

  /// Checks shapes against the checkpoint before loading (un-adapted
  /// statistics accept any shape).
  void load(torch::serialize::InputArchive& archive) override;

  void pretty_print(std::ostream& stream) const override;

  /// The options this module was built with.
  NormalizationOptions options;
  /// Per-feature mean (float64 by default); empty before adapt.
  at::Tensor mean;
  /// Per-feature population variance; empty before adapt.
  at::Tensor variance;
  /// Number of samples the statistics summarize (int64 scalar); 0 for fixed
  /// or missing statistics.
  at::Tensor count;

 private:
  /// Resolves `axis` against a `dim`-D input into the sorted feature dims.
  std::vector<int64_t> feature_dims(int64_t dim, const char* where) const;
  /// `mean`/`scale` viewed so they broadcast against a `dim`-D input, after
  /// checking that the input's feature sizes match.
  std::pair<at::Tensor, at::Tensor> broadcast_stats(const at::Tensor& x,
                                                    const char* where) const;
  void check_adapt_input(const at::Tensor& x, const char* where) const;
  /// check_adapt_input, then the moments along the feature axis; `where`
  /// names the caller in error messages.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> checked_moments(
      const at::Tensor& batch, const char* where) const;
};

/// A ModuleHolder for NormalizationImpl (see torch::nn::ModuleHolder).
TORCH_MODULE(Normalization);

}  // namespace normopt::nn
