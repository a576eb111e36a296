#pragma once

/// Multi-process normopt on PyTorch's own distributed engine (c10d: Gloo on
/// CPU, NCCL on CUDA): statistics of the union of all ranks' shards, and
/// data-parallel training with gradients all-reduced before the fused
/// optimizer step.
///
/// \code
///   // torchrun --no-python --standalone --nproc-per-node 2 ./my_program
///   // (sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
///   auto group = normopt::distributed::init_process_group();
///   auto part = normopt::distributed::shard(table, group->getRank(),
///                                           group->getSize());
///   normopt::distributed::fit_statistics(model, part.features,
///                                        part.targets, *group);
///   auto history = normopt::distributed::fit(model, adam, part, options,
///                                            *group);
/// \endcode
///
/// Not included by <normopt/normopt.h> (c10d headers are heavy); available
/// when normopt was built with gloo's headers (NORMOPT_HAVE_DISTRIBUTED in
/// <normopt/config.h> is 1; otherwise this header is not installed).

#include <normopt/data/csv.h>
#include <normopt/macros.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/nn/target_standardizer.h>
#include <normopt/train/fit.h>
#include <torch/arg.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <chrono>
#include <string>

namespace normopt::distributed {

/// Options for `init_process_group`.
struct NORMOPT_API InitOptions {
  /// The c10d backend: "gloo" (CPU tensors, any machine) or "nccl" (CUDA
  /// tensors; each rank uses GPU RANK % device count; needs normopt built
  /// against a CUDA LibTorch with NCCL, NORMOPT_HAVE_NCCL in
  /// <normopt/config.h>). Every function below moves tensors to the
  /// backend's device for the collectives and back, so a model and data on
  /// either device work with either backend.
  TORCH_ARG(std::string, backend) = "gloo";
  /// How long a collective (and the initial rendezvous) may wait for the
  /// other ranks before failing with an error instead of hanging: this is
  /// what turns a dead rank into a clear error on the others.
  TORCH_ARG(std::chrono::milliseconds, timeout) = std::chrono::seconds(60);
};

/// A process group (Gloo unless `options.backend`) from the usual
/// environment, as torchrun sets it: RANK, WORLD_SIZE, MASTER_ADDR and
/// MASTER_PORT (the TCPStore there is torchrun's own when
/// TORCHELASTIC_USE_AGENT_STORE=True, else rank 0 hosts it). Throws a
/// c10::Error naming a missing or malformed variable, an unknown backend,
/// or "nccl" where it is not available.
NORMOPT_API c10::intrusive_ptr<c10d::ProcessGroup> init_process_group(
    const InitOptions& options = {});

/// Rows [rank·N/world, (rank+1)·N/world) of `table`: this rank's shard.
NORMOPT_API data::Table shard(const data::Table& table,
                              int64_t rank,
                              int64_t world);

/// This rank's shard of a CSV file, each rank parsing only its share: the
/// data bytes are cut into world even ranges, and a rank reads the rows
/// that start in its range (cuts move to the next record start, quoted
/// fields spanning lines included: the ranks exchange their quote counts
/// once). Every rank reads the header; the shards together are the file's
/// rows, in order, each rank's holding about size/world bytes of rows.
/// Collective. When any rank's range has an error, every rank reads the
/// whole file instead, so every rank throws read_csv's c10::Error, naming
/// the file and line. A file whose cuts cannot be placed by quote counts (a
/// '"' inside an unquoted field) is read whole by every rank and sharded
/// with shard(), with a warning. With one rank: read_csv.
NORMOPT_API data::Table read_csv_shard(const std::string& path,
                                       const data::CsvOptions& options,
                                       c10d::ProcessGroup& group);

/// Adapts `norm` to the union of every rank's `shard` (at least one row on
/// every rank; an empty one throws c10::Error on its rank): each rank's
/// count, mean and M2 are gathered and merged in rank order with the same
/// Chan formula as Normalization::update, so every rank ends with identical
/// statistics, equal to one process adapting on the concatenation.
/// Collective: every rank must call it.
NORMOPT_API void adapt(nn::Normalization& norm,
                       const at::Tensor& shard,
                       c10d::ProcessGroup& group);

/// Fits `target` to the union of every rank's targets (z-score, min-max or
/// none). Collective.
NORMOPT_API void fit(nn::TargetStandardizer& target,
                     const at::Tensor& shard,
                     c10d::ProcessGroup& group);

/// adapt() for the model's inputs and fit() for its targets. Collective.
NORMOPT_API void fit_statistics(nn::StandardizedRegressor& model,
                                const at::Tensor& x_shard,
                                const at::Tensor& y_shard,
                                c10d::ProcessGroup& group);

/// Copies rank 0's parameters and buffers to every rank. Collective.
NORMOPT_API void broadcast_parameters(torch::nn::Module& module,
                                      c10d::ProcessGroup& group);

/// Replaces each parameter's .grad() by the row-weighted average over ranks,
/// Σ_r rows_r·grad_r / Σ_r rows_r (the gradient of the mean loss over the
/// union of the batches), all-reduced in flat float64 buckets of at most
/// `bucket_elements` values. Returns the global row count. Collective.
NORMOPT_API int64_t allreduce_gradients(torch::nn::Module& module,
                                        int64_t rows,
                                        c10d::ProcessGroup& group,
                                        int64_t bucket_elements = 1 << 22);

/// Data-parallel train::fit: statistics of the union of the shards (when
/// the model has none yet), rank 0's initial parameters on every rank,
/// then train::fit on this rank's shard with gradients all-reduced before
/// each optimizer step, so every rank holds identical parameters. With
/// batch_size 0 (full batch) the run equals one process on all the data.
/// Every rank must take the same number of steps per epoch: checked up
/// front. Each epoch's losses and MSEs are those of the union of the shards
/// (row-weighted over ranks as train::kEpochLogFields says, all-reduced
/// after each epoch), in the returned History, in every callback and in
/// checkpoints; with `options.validation()` (each rank's validation shard),
/// val_loss and val_mse are the union's too. distributed::fit puts its own
/// callback (the all-reduces) first in `options.callbacks()` and keeps the
/// caller's: they run on every rank, see the all-reduced gradients in
/// before_step and the union's losses from on_epoch_measured on. Checkpoints
/// (`checkpoint_path`) are written by rank 0 alone; `resume_from` must name
/// a file every rank can read (the same path on a shared or local disk):
/// every rank loads it, and the statistics and broadcast are then skipped.
/// Early stopping and ReduceLROnPlateau decide on the union's loss, the same
/// on every rank, so all ranks stop and cut the learning rate together.
/// Only rank 0 draws a progress bar; write logs and files from rank 0
/// (group.getRank() == 0).
NORMOPT_API train::History fit(nn::StandardizedRegressor& model,
                               torch::optim::Optimizer& optimizer,
                               const data::Table& shard,
                               train::FitOptions options,
                               c10d::ProcessGroup& group);

}  // namespace normopt::distributed
