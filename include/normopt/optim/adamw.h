#pragma once

/// AdamW (Adam with decoupled weight decay) for torch::optim, same fused
/// kernel as normopt::optim::Adam.
///
/// \code
///   normopt::optim::AdamW opt(
///       model->parameters(),
///       normopt::optim::AdamWOptions(1e-3).weight_decay(1e-2));
/// \endcode

#include <normopt/macros.h>
#include <normopt/optim/adam.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include <optional>
#include <tuple>
#include <vector>

namespace normopt::optim {

// AdamWOptions (BasicAdamOptions<true>, adam.h): Adam's fields, with
// weight_decay decoupled and 1e-2 by default.

/// Per-parameter AdamW state: the same moments as Adam's.
using AdamWParamState = AdamParamState;

namespace detail {
extern template class AdamFamily<AdamWOptions>;
}  // namespace detail

/// AdamW (Loshchilov & Hutter) as a torch::optim::Optimizer: Adam's
/// implementation with decoupled weight decay.
class NORMOPT_API AdamW : public detail::AdamFamily<AdamWOptions> {
 public:
  using AdamFamily::AdamFamily;
};

}  // namespace normopt::optim
