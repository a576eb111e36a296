// Meta kernels of the optimizer-step ops: what FakeTensor (torch.compile,
// torch.export, torch.library.opcheck) runs instead of the arithmetic. The
// ops return nothing and only mutate their inputs in place, so a meta kernel
// has no output to shape: it runs the CPU kernel's argument checks
// (optim_step_checks.h) at trace time and does nothing else. With symbolic
// shapes the density and overlap tests are left to the real kernel.
#include "../optim_step_checks.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../../util/library.h"

namespace normopt::ops {
namespace {

template <typename Steps>
void adam_meta(const detail::AdamLists& l,
               Steps steps,
               const AdamStepOptions& o) {
  detail::check_adam_args(at::kMeta, l, steps, o);
}

void sgd_meta(const detail::SgdLists& l, const SgdStepOptions& o) {
  detail::check_sgd_args(at::kMeta, l, o);
}

}  // namespace

NORMOPT_LIBRARY_IMPL(Meta, m) {
  using detail::adam_entry;
  m.impl("adam_step_",
         &adam_entry<at::IntArrayRef, &adam_meta<at::IntArrayRef>>);
  m.impl("adam_step_capturable_",
         &adam_entry<at::TensorList, &adam_meta<at::TensorList>>);
  m.impl("sgd_step_", &detail::sgd_entry<&sgd_meta>);
}

}  // namespace normopt::ops
