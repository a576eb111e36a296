#include <normopt/train/fit.h>

#include "batches.h"

#include <c10/util/Exception.h>

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

}  // namespace normopt::train
