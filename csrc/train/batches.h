#pragma once
// Internal: how fit() cuts an epoch into batches and orders its rows, in one
// place for fit() and for diagnose()'s replay of it.

#include <normopt/train/fit.h>

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

namespace normopt::train::detail {

/// Rows per step: batch_size, 0 meaning every row, at most `rows`.
inline int64_t batch_rows(int64_t rows, int64_t batch_size) {
  return batch_size == 0 ? rows : std::min(batch_size, rows);
}

/// Steps per epoch: train::batches_per_epoch (fit.h, batches.cpp).
inline int64_t batches_per_epoch(int64_t rows, int64_t batch_size) {
  return train::batches_per_epoch(rows, batch_size);
}

/// Epoch `epoch`'s order of `n` rows: a permutation from a generator seeded
/// with seed + epoch, fit()'s rule. It is a pure function of (seed + epoch,
/// n), so the last orders drawn are kept (at most 256 of them and 64 MiB,
/// batches.cpp): a forecast and the run it forecasts, its remedies' replays
/// and the runs of a comparison that share a seed draw each order once. The
/// tensor is shared: read it, never write into it.
at::Tensor epoch_order(uint64_t seed, int64_t epoch, int64_t n);

/// A permutation of `n` rows from `generator`, after seeding it with
/// seed + epoch when `reseed` (the first draw of an epoch; a streamed epoch
/// draws again for each block, from where the first draw left the
/// generator).
inline at::Tensor epoch_permutation(at::Generator& generator,
                                    uint64_t seed,
                                    int64_t epoch,
                                    int64_t n,
                                    bool reseed) {
  if (reseed) {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed + static_cast<uint64_t>(epoch));
  }
  // randperm takes the generator's lock itself.
  return at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
}

}  // namespace normopt::train::detail
