#pragma once
// Internal: fit()'s checkpoints (see FitOptions::checkpoint_path and
// resume_from for what they hold and guarantee).
//
// Layout: the root of the archive is the model's own archive (so
// torch::load(model, path) reads a checkpoint like a model file) plus one
// record, "normopt_fit": its format ("normopt.fit_checkpoint"), version and
// History columns (history_columns, e.g. "epoch,train_loss,..."), then the
// run so far, the settings a resumed run must share, the optimizer's state
// and torch's CPU RNG state (the entries: Record in checkpoint.cpp). A file
// of another version or other History columns is refused, naming both.
//
// Integrity: before LibTorch's reader (which verifies no CRC) sees the
// file, every zip entry is checked against its CRC-32 (util::check_zip), so
// a damaged byte anywhere is refused rather than loaded. Version 1 files
// also held an FNV-1a digest of the values; it is ignored.

#include <normopt/train/fit.h>

#include <torch/serialize/input-archive.h>

#include <string>

namespace normopt::train::detail {

/// Everything fit() needs to write a checkpoint.
struct CheckpointContent {
  nn::StandardizedRegressor model;
  const torch::optim::Optimizer* optimizer = nullptr;
  const FitOptions* options = nullptr;
  const History* history = nullptr;
  bool has_validation = false;
};

/// Saves a checkpoint to `path` atomically (util::write_atomically). Throws,
/// writing nothing, when a parameter or floating-point buffer of the model
/// holds NaN or Inf.
void save_checkpoint(const std::string& path, const CheckpointContent& what);

/// A checkpoint read and checked against the run that resumes it.
struct ResumePoint {
  /// The file it was read from, for messages.
  std::string path;
  /// The History saved with it (its epochs are the completed ones).
  History history;
  /// The optimizer's archive, loaded by restore() after the schedulers'
  /// replay (the replay moves the learning rates; the load restores them).
  torch::serialize::InputArchive optimizer;
  /// torch's global CPU generator state when the checkpoint was saved.
  at::Tensor cpu_rng;
};

/// Loads the optimizer's saved state into `optimizer` (read_checkpoint has
/// already loaded it once, so this does not fail) and sets torch's global
/// CPU generator to the saved state.
void restore(ResumePoint& point, torch::optim::Optimizer& optimizer);

/// Reads `path`, checks it against this run (format, optimizer type and
/// param-group layout, settings, epochs), loads the optimizer's saved state
/// once as a trial (then puts the optimizer's current state back) and last
/// loads the model from it (shape-checked). All or nothing: on any mismatch
/// or failure it throws c10::Error naming `path` and what does not match,
/// and the model and optimizer are as they were.
ResumePoint read_checkpoint(const std::string& path,
                            nn::StandardizedRegressor& model,
                            torch::optim::Optimizer& optimizer,
                            const FitOptions& options,
                            bool has_validation);

}  // namespace normopt::train::detail
