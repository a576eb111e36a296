#pragma once
// Internal: the tensor lists an optimizer's step() hands to a fused op.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>
#include <c10/util/MaybeOwned.h>
#include <c10/util/SmallVector.h>

#include <array>
#include <cstddef>
#include <vector>

namespace normopt::optim::detail {

/// N lists of tensors, filled during one step() and passed to a fused op.
/// The lists borrow: `add` puts in the tensor itself, without a reference
/// count (an atomic increment and decrement per tensor and step, which for a
/// small model cost as much as the update), so what it adds must outlive
/// the lists' next clear(): a parameter, its gradient or its optimizer
/// state, all kept by the optimizer or autograd for the whole step. A
/// tensor made during the step goes in with `add_owned`, which keeps it
/// until clear(). Up to 8 tensors a list live on the stack (a small model's
/// step allocates nothing), and clear() runs when the StepLists goes out of
/// scope, by a normal return or by an exception.
template <size_t N>
class StepLists {
 public:
  StepLists() = default;
  ~StepLists() {
    clear();
  }
  StepLists(const StepLists&) = delete;
  StepLists& operator=(const StepLists&) = delete;

  at::TensorList operator[](size_t i) const {
    return lists_[i];
  }

  /// Adds `t`, which outlives the next clear(), to list i.
  void add(size_t i, const at::Tensor& t) {
    lists_[i].push_back(c10::MaybeOwnedTraits<at::Tensor>::createBorrow(t));
  }

  /// Adds `t`, made for this step, to list i and keeps it until clear().
  void add_owned(size_t i, at::Tensor t) {
    owned_.push_back(std::move(t));
    add(i, owned_.back());  // borrows the TensorImpl, which moves never change
  }

  void clear() {
    for (auto& list : lists_) {
      for (auto& t : list) {
        c10::MaybeOwnedTraits<at::Tensor>::destroyBorrow(t);
      }
      list.clear();
    }
    owned_.clear();
  }

 private:
  std::array<c10::SmallVector<at::Tensor, 8>, N> lists_;
  std::vector<at::Tensor> owned_;
};

/// Adds parameter p's gradient `grad` to list i of `lists` as the fused ops
/// want it: laid out like p (the ops require equal strides), so a gradient
/// with other strides goes in as a copy.
template <size_t N>
C10_ALWAYS_INLINE void add_grad(StepLists<N>& lists,
                                size_t i,
                                const at::Tensor& p,
                                const at::Tensor& grad) {
  // Compared in place (std::equal of int64s is a call to memcmp).
  const auto gs = grad.strides(), ps = p.strides();
  bool same = gs.size() == ps.size();
  for (size_t d = 0; same && d < gs.size(); ++d) {
    same = gs[d] == ps[d];
  }
  if (same) {
    lists.add(i, grad);
  } else {
    lists.add_owned(i, at::empty_like(p).copy_(grad));
  }
}

/// Parameter p's gradient, read from its TensorImpl: at::Tensor::grad()
/// asks autograd whether p is a leaf on every call, only to warn about a
/// non-leaf without a gradient, so that case (an undefined gradient) still
/// goes through it for the warning.
inline const at::Tensor& grad_of(const at::Tensor& p) {
  const at::Tensor& grad = p.unsafeGetTensorImpl()->grad();
  return grad.defined() ? grad : p.grad();
}

/// Whether parameter `i` of a param group takes part in a step: it has a
/// gradient (`grad`: grad_of(p), read once by the caller), which must be
/// dense (`optimizer` names the optimizer in the message).
inline bool has_dense_grad(const char* optimizer,
                           size_t i,
                           const at::Tensor& grad) {
  if (!grad.defined()) {
    return false;
  }
  TORCH_CHECK(!grad.is_sparse(),
              optimizer,
              ": parameter ",
              i,
              " has a sparse gradient, which this optimizer does not "
              "support; use a dense embedding or gradient");
  return true;
}

}  // namespace normopt::optim::detail
