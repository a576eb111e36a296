#pragma once
// Internal: what fit()'s epoch loop trains on. The epoch's batches come in
// blocks of consecutive batches over prepared rows (inputs normalized,
// targets standardized, on the model's dtype and device), so a block can be
// stepped one batch at a time or in one fused run (fused_steps.h); and the
// losses over every row.

#include <normopt/data/stream.h>
#include <normopt/data/table.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/train/fit.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

namespace normopt::train::detail {

/// Consecutive batches over prepared rows: inputs x (n, p), targets y
/// (n, k), the order the rows are visited in (int64 (n) on x's device, or
/// undefined: as stored), and `batch` rows per step. The block holds
/// `batches` batches, cut from its first row; the last may hold fewer rows.
struct BatchBlock {
  at::Tensor x;
  at::Tensor y;
  at::Tensor order;
  int64_t batch = 0;
  int64_t batches = 0;

  /// Batch b's inputs and targets (gathered when the order is given).
  std::pair<at::Tensor, at::Tensor> batch_at(int64_t b) const;
};

/// The training data of one fit(): its epochs' blocks and its losses.
class TrainingRows {
 public:
  virtual ~TrainingRows() = default;
  /// Rows, and steps per epoch.
  int64_t rows = 0;
  int64_t batches = 0;
  using BlockFn = std::function<void(const BatchBlock&)>;
  /// Calls fn on each block of `epoch`, in order; the blocks' batches add
  /// up to `batches`.
  virtual void for_each_block(int64_t epoch, const BlockFn& fn) = 0;
  /// (loss, mse) over every row with the model as it is.
  virtual std::pair<double, double> evaluate() = 0;
};

/// What the regressor trains on: inputs through the model's Normalization,
/// targets (N) or (N, k) as (N, k) through its TargetStandardizer, both
/// converted to `options` first.
at::Tensor prepared_inputs(nn::StandardizedRegressor& model,
                           const at::Tensor& features,
                           const at::TensorOptions& options);
at::Tensor prepared_targets(nn::StandardizedRegressor& model,
                            const at::Tensor& targets,
                            const at::TensorOptions& options);

/// Whether `normalization` scales each feature column of (N, p) rows on its
/// own (axis -1 or 1): its statistics are then one (p) vector each.
bool per_column(const nn::NormalizationImpl& normalization);

/// `features` through `normalization` (converted to out's dtype first, as
/// prepared_inputs does) and `targets` through `target`'s transform (as
/// prepared_targets does), written into `out`, rows of the right shape: the
/// same values, on the CPU in one pass without temporaries when the scaler
/// is per column (the usual case).
void normalize_into(nn::NormalizationImpl& normalization,
                    const at::Tensor& features,
                    const at::Tensor& out);
void standardize_targets_into(const nn::TargetStandardizerImpl& target,
                              const at::Tensor& targets,
                              const at::Tensor& out);

/// The dtype and device of the model's parameters.
at::TensorOptions data_options_of(const nn::StandardizedRegressor& model);

/// A Table in memory: one block per epoch over rows prepared once (the
/// input statistics stay fixed while the regressor trains), permuted by
/// epoch_order when shuffling.
std::unique_ptr<TrainingRows> table_rows(nn::StandardizedRegressor& model,
                                         const data::Table& train,
                                         const FitOptions& options);

/// A TableStream of `n_rows` rows, read again each epoch through a shuffle
/// buffer of options.shuffle_buffer() rows: a block per filled buffer
/// (permuted with the epoch's generator; the rows of a last incomplete
/// batch wait for the next buffer). With a buffer of at least n_rows rows
/// this is the Table's order exactly.
std::unique_ptr<TrainingRows> stream_rows(nn::StandardizedRegressor& model,
                                          data::TableStream& stream,
                                          int64_t n_rows,
                                          const FitOptions& options);

}  // namespace normopt::train::detail
