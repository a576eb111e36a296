#pragma once
// Internal: the tensor lists an optimizer's step() hands to a fused op.

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <array>
#include <cstddef>
#include <vector>

namespace normopt::optim::detail {

/// N per-thread lists of tensors, filled during one step() and passed to a
/// fused op. The vectors keep their capacity from step to step (a small
/// model's step allocates nothing), and every reference is dropped when the
/// StepLists goes out of scope, by a normal return or by an exception, so
/// the cache never keeps a parameter or its state alive between steps. One
/// StepLists<N> per thread at a time: step() is not re-entrant.
template <size_t N>
class StepLists {
 public:
  StepLists() : lists_(storage()) {
    clear();
  }
  ~StepLists() {
    clear();
  }
  StepLists(const StepLists&) = delete;
  StepLists& operator=(const StepLists&) = delete;

  std::vector<at::Tensor>& operator[](size_t i) {
    return lists_[i];
  }

  void clear() {
    for (auto& list : lists_) {
      list.clear();
    }
  }

 private:
  static std::array<std::vector<at::Tensor>, N>& storage() {
    thread_local std::array<std::vector<at::Tensor>, N> lists;
    return lists;
  }

  std::array<std::vector<at::Tensor>, N>& lists_;
};

/// Whether parameter `i` of a param group takes part in a step: it has a
/// gradient (`grad`: its grad(), read once by the caller, as each read goes
/// through autograd's metadata), which must be dense (`optimizer` names the
/// optimizer in the message).
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
