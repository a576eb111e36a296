#include <normopt/train/fit.h>

#include "batches.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <list>
#include <mutex>

namespace normopt::train {

int64_t batches_per_epoch(int64_t rows, int64_t batch_size) {
  TORCH_CHECK(rows >= 0,
              "normopt::train::batches_per_epoch: rows must be >= 0, got ",
              rows);
  TORCH_CHECK(batch_size >= 0,
              "normopt::train::batches_per_epoch: batch_size must be >= 0 "
              "(0 = full batch), got ",
              batch_size);
  const int64_t batch = detail::batch_rows(rows, batch_size);
  return batch > 0 ? (rows + batch - 1) / batch : 0;
}

namespace detail {
namespace {

// The orders kept: most recently used first, at most kKeptOrders of them
// (a look-up scans them) and kKeptBytes in all.
constexpr size_t kKeptOrders = 256;
constexpr int64_t kKeptBytes = int64_t{64} << 20;

struct KeptOrder {
  uint64_t seed;  // seed + epoch
  int64_t n;
  at::Tensor order;
};

std::mutex kept_mutex;
std::list<KeptOrder> kept;
int64_t kept_bytes = 0;

}  // namespace

at::Tensor epoch_order(uint64_t seed, int64_t epoch, int64_t n) {
  const uint64_t key = seed + static_cast<uint64_t>(epoch);
  {
    std::lock_guard<std::mutex> lock(kept_mutex);
    for (auto it = kept.begin(); it != kept.end(); ++it) {
      if (it->seed == key && it->n == n) {
        kept.splice(kept.begin(), kept, it);
        return it->order;
      }
    }
  }
  auto generator = at::make_generator<at::CPUGeneratorImpl>(key);
  auto order = at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
  const int64_t bytes = n * static_cast<int64_t>(sizeof(int64_t));
  if (bytes > kKeptBytes) {
    return order;
  }
  std::lock_guard<std::mutex> lock(kept_mutex);
  kept.push_front({key, n, order});
  kept_bytes += bytes;
  while (kept_bytes > kKeptBytes || kept.size() > kKeptOrders) {
    kept_bytes -= kept.back().n * static_cast<int64_t>(sizeof(int64_t));
    kept.pop_back();
  }
  return order;
}

}  // namespace detail
}  // namespace normopt::train
