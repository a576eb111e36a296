#pragma once
// Internal: the sums an affine model's minibatch gradient is made of, per
// batch of one of fit()'s epochs, so that diagnose()'s replay of a small
// model's run costs O(p²) per step, read in order, instead of gathering the
// batch's rows; computed once per (table, epoch order, batch size) and kept
// for the forecasts and remedies that replay the same batches.

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace normopt::train::detail {

/// A tensor as it was when something was computed from it: the same
/// TensorImpl (held weakly, so its address is not reused while this lives),
/// data, shape, dtype and version (an in-place change bumps it). Not for
/// inference tensors (they have no version).
class TensorIdentity {
 public:
  explicit TensorIdentity(const at::Tensor& t);
  /// Whether `t` is that tensor, unchanged.
  bool same(const at::Tensor& t) const;
  /// Whether the tensor is gone.
  bool expired() const {
    return impl_.expired();
  }

 private:
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> impl_;
  const void* data_;
  std::vector<int64_t> sizes_, strides_;
  at::ScalarType dtype_;
  at::Device device_;
  uint32_t version_;
};

/// Which rows, cut how: the raw table (x (N, p), y (N) or (N, k), any
/// device and float dtype, as the user gave them), the reference point the
/// sums are taken about (float64 column means of x (p) and y (k): with it
/// the sums hold no large offsets to cancel), and fit()'s batches.
struct BatchRows {
  at::Tensor x, y;
  at::Tensor x_ref, y_ref;
  int64_t batch = 0;
  bool shuffle = true;
  uint64_t seed = 0;
};

/// One epoch's sums, per batch b in fit()'s order, with d = x - x_ref and
/// e = y - y_ref over the batch's rows (float64): the row count, Σd (p),
/// Σe (k), Σ d dᵀ (p × p, row-major, both triangles) and Σ d eᵀ (p × k).
class EpochMoments {
 public:
  EpochMoments(int64_t batches, int64_t p, int64_t k)
      : p_(p),
        k_(k),
        stride_(1 + p + k + p * p + p * k),
        sums_(static_cast<size_t>(batches * stride_), 0.0) {}

  int64_t batches() const {
    return static_cast<int64_t>(sums_.size()) / stride_;
  }
  int64_t bytes() const {
    return static_cast<int64_t>(sums_.size() * sizeof(double));
  }
  double rows(int64_t b) const {
    return at(b)[0];
  }
  const double* sum_d(int64_t b) const {
    return at(b) + 1;
  }
  const double* sum_e(int64_t b) const {
    return at(b) + 1 + p_;
  }
  const double* sum_dd(int64_t b) const {
    return at(b) + 1 + p_ + k_;
  }
  const double* sum_de(int64_t b) const {
    return at(b) + 1 + p_ + k_ + p_ * p_;
  }
  double* at(int64_t b) {
    return sums_.data() + b * stride_;
  }
  const double* at(int64_t b) const {
    return sums_.data() + b * stride_;
  }

 private:
  int64_t p_, k_, stride_;
  std::vector<double> sums_;
};

/// Whether a replay from batch sums beats one over the rows: the sums of a
/// batch are no larger than its rows (p features, k targets, `batch` rows).
bool batch_sums_pay(int64_t p, int64_t k, int64_t batch);

/// Epoch `epoch`'s sums (epochs count from 1, as fit()'s). The last ones
/// computed are kept (at most 64 MiB, looked up by the tensors' identity and
/// version, so a table changed in place is summed again); the result is
/// shared: read it, never write into it.
std::shared_ptr<const EpochMoments> epoch_moments(const BatchRows& rows,
                                                  int64_t epoch);

}  // namespace normopt::train::detail
