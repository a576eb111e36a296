#pragma once
// Internal (namespace detail, not normopt's API: it may change in any
// release). One module's interface for another inside the library, kept
// in include/normopt/<module>/detail/ so that no file reaches into another
// module's csrc/ folder.
//
// What an optimizer lends to a fused run of steps
// (ops::affine_mse_steps_, which fit() calls): a parameter's settings and
// its optimizer state, shared, so the fused steps advance the optimizer's
// own state and its next step(), save() and a resumed run see them.

#include <normopt/ops/detail/affine_steps.h>

#include <torch/optim/optimizer.h>

#include <optional>

namespace normopt::optim::detail {

/// `param`'s share of ops::affine_mse_steps_ (its .grad() the working buffer),
/// or nullopt when `optimizer` cannot lend it: it is not normopt's Adam, AdamW
/// or SGD itself (a subclass may step otherwise), holds no such parameter, or
/// its step is capturable; or the parameter has no gradient or state yet
/// (before the optimizer's first step), or tensors that are not contiguous and
/// on the CPU.
std::optional<ops::AffineStepParam> lend_state(
    torch::optim::Optimizer& optimizer, const at::Tensor& param);

}  // namespace normopt::optim::detail
