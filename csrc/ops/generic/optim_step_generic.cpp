// The device-generic kernels of the optimizer-step ops (see
// optim_step_generic.h): the fused kernels' update, written with ATen's
// _foreach_ ops, which every backend implements.
#include "optim_step_generic.h"

#include "../../util/library.h"
#include "../adam_bias_correction.h"
#include "../optim_step_checks.h"

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <vector>

namespace normopt::ops::detail {
namespace {

using Tensors = std::vector<at::Tensor>;

at::DeviceType device_of(at::TensorList params) {
  return params.empty() ? at::kCPU : params[0].device().type();
}

// The list in opmath_t: float16/bfloat16 tensors as float copies, the
// others as themselves (updates then land in place).
Tensors in_opmath(at::TensorList list) {
  Tensors out;
  out.reserve(list.size());
  for (const auto& t : list) {
    const auto opmath = at::toOpMathType(t.scalar_type());
    out.push_back(t.scalar_type() == opmath ? t : t.to(opmath));
  }
  return out;
}

// Rounds the float copies of in_opmath back into their tensors.
void write_back(at::TensorList dst, const Tensors& src) {
  for (size_t i = 0; i < dst.size(); ++i) {
    if (!src[i].is_same(dst[i])) {
      dst[i].copy_(src[i]);
    }
  }
}

// a * s, tensor by tensor (a new list).
Tensors scaled(const Tensors& a, double s) {
  return at::_foreach_mul(a, at::Scalar(s));
}

}  // namespace

namespace {

// The Adam update once the lists are checked; neg_step_size[i] and
// bc2_sqrt[i] are tensor i's bias-corrected constants, as Scalars (host step
// counts) or as 0-dim tensors (step counts on the device).
template <typename Scales>
void adam_update(const AdamLists& l,
                 const Scales& neg_step_size,
                 const Scales& bc2_sqrt,
                 const AdamStepOptions& o) {
  Tensors p = in_opmath(l.params), m = in_opmath(l.exp_avgs),
          v = in_opmath(l.exp_avg_sqs);
  Tensors vmax = o.amsgrad ? in_opmath(l.max_exp_avg_sqs) : Tensors{};
  const Tensors g0 = in_opmath(l.grads);
  Tensors g = o.maximize ? at::_foreach_neg(g0) : g0;
  if (o.weight_decay != 0) {
    if (o.decoupled_weight_decay) {
      at::_foreach_mul_(p, at::Scalar(1 - o.lr * o.weight_decay));
    } else {
      g = at::_foreach_add(g, scaled(p, o.weight_decay));
    }
  }
  at::_foreach_mul_(m, at::Scalar(o.beta1));
  at::_foreach_add_(m, scaled(g, 1 - o.beta1));
  at::_foreach_mul_(v, at::Scalar(o.beta2));
  Tensors g2 = scaled(g, 1 - o.beta2);
  at::_foreach_mul_(g2, g);
  at::_foreach_add_(v, g2);
  if (o.amsgrad) {
    at::_foreach_maximum_(vmax, v);
  }
  Tensors denom = at::_foreach_sqrt(o.amsgrad ? vmax : v);
  at::_foreach_div_(denom, bc2_sqrt);
  at::_foreach_add_(denom, at::Scalar(o.eps));
  Tensors update = at::_foreach_mul(m, neg_step_size);
  at::_foreach_div_(update, denom);
  at::_foreach_add_(p, update);
  write_back(l.params, p);
  write_back(l.exp_avgs, m);
  write_back(l.exp_avg_sqs, v);
  if (o.amsgrad) {
    write_back(l.max_exp_avg_sqs, vmax);
  }
}

}  // namespace

void adam_step_generic(const AdamLists& l,
                       at::IntArrayRef steps,
                       const AdamStepOptions& o) {
  check_adam_args(device_of(l.params), l, steps, o);
  if (l.params.empty()) {
    return;
  }
  // Below autograd, as the fused kernels are: the parameters are leaves
  // that require grad, updated in place.
  const at::AutoDispatchBelowADInplaceOrView guard;
  const size_t n = l.params.size();
  std::vector<at::Scalar> neg_step_size(n), bc2_sqrt(n);
  for (size_t i = 0; i < n; ++i) {
    const auto bc = adam_bias_correction(
        o.lr, o.beta1, o.beta2, static_cast<double>(steps[i]), o.keras_epsilon);
    neg_step_size[i] = -bc.step_size;
    bc2_sqrt[i] = bc.bc2_sqrt;
  }
  adam_update(l, neg_step_size, bc2_sqrt, o);
}

void adam_step_generic(const AdamLists& l,
                       at::TensorList state_steps,
                       const AdamStepOptions& o) {
  check_adam_args(device_of(l.params), l, state_steps, o);
  if (l.params.empty()) {
    return;
  }
  const at::AutoDispatchBelowADInplaceOrView guard;
  at::_foreach_add_(state_steps, at::Scalar(1));
  // adam_bias_correction's formula in tensor ops on the device, in the step
  // counts' dtype; 0-dim, so they broadcast over each tensor.
  Tensors t;
  t.reserve(state_steps.size());
  for (const auto& s : state_steps) {
    t.push_back(s.reshape({}));
  }
  Tensors bc1 = at::_foreach_pow(at::Scalar(o.beta1), t);
  at::_foreach_neg_(bc1);
  at::_foreach_add_(bc1, at::Scalar(1));
  Tensors bc2 = at::_foreach_pow(at::Scalar(o.beta2), t);
  at::_foreach_neg_(bc2);
  at::_foreach_add_(bc2, at::Scalar(1));
  Tensors bc2_sqrt = at::_foreach_sqrt(bc2);
  // -lr / bc1, times sqrt(bc2) in Keras's mode (whose bc2_sqrt is then 1).
  Tensors neg_step_size = at::_foreach_reciprocal(bc1);
  at::_foreach_mul_(neg_step_size, at::Scalar(-o.lr));
  if (o.keras_epsilon) {
    at::_foreach_mul_(neg_step_size, bc2_sqrt);
    at::_foreach_zero_(bc2_sqrt);
    at::_foreach_add_(bc2_sqrt, at::Scalar(1));
  }
  adam_update(l, neg_step_size, bc2_sqrt, o);
}

void sgd_step_generic(const SgdLists& l, const SgdStepOptions& o) {
  check_sgd_args(device_of(l.params), l, o);
  if (l.params.empty()) {
    return;
  }
  const at::AutoDispatchBelowADInplaceOrView guard;
  Tensors p = in_opmath(l.params);
  const Tensors g0 = in_opmath(l.grads);
  Tensors g = o.maximize ? at::_foreach_neg(g0) : g0;
  if (o.weight_decay != 0) {
    g = at::_foreach_add(g, scaled(p, o.weight_decay));
  }
  if (o.momentum != 0) {
    Tensors buf = in_opmath(l.momentum_buffers);
    if (o.is_first_step) {
      at::_foreach_copy_(buf, g);
    } else {
      at::_foreach_mul_(buf, at::Scalar(o.momentum));
      at::_foreach_add_(buf, scaled(g, 1 - o.dampening));
    }
    g = o.nesterov ? at::_foreach_add(g, scaled(buf, o.momentum)) : buf;
    write_back(l.momentum_buffers, buf);
  }
  at::_foreach_add_(p, scaled(g, -o.lr));
  write_back(l.params, p);
}

}  // namespace normopt::ops::detail

NORMOPT_LIBRARY_IMPL(CompositeExplicitAutograd, m) {
  using namespace normopt::ops::detail;
  m.impl("adam_step_", &adam_entry<at::IntArrayRef, &adam_step_generic>);
  m.impl("adam_step_capturable_",
         &adam_entry<at::TensorList, &adam_step_generic>);
  m.impl("sgd_step_", &sgd_entry<&sgd_step_generic>);
}
