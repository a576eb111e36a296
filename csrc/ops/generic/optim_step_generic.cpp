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
void adam_update(at::TensorList params,
                 at::TensorList grads,
                 at::TensorList exp_avgs,
                 at::TensorList exp_avg_sqs,
                 at::TensorList max_exp_avg_sqs,
                 const Scales& neg_step_size,
                 const Scales& bc2_sqrt,
                 double lr,
                 double beta1,
                 double beta2,
                 double eps,
                 double weight_decay,
                 bool amsgrad,
                 bool maximize,
                 bool decoupled_weight_decay) {
  Tensors p = in_opmath(params), m = in_opmath(exp_avgs),
          v = in_opmath(exp_avg_sqs);
  Tensors vmax = amsgrad ? in_opmath(max_exp_avg_sqs) : Tensors{};
  const Tensors g0 = in_opmath(grads);
  Tensors g = maximize ? at::_foreach_neg(g0) : g0;
  if (weight_decay != 0) {
    if (decoupled_weight_decay) {
      at::_foreach_mul_(p, at::Scalar(1 - lr * weight_decay));
    } else {
      g = at::_foreach_add(g, scaled(p, weight_decay));
    }
  }
  at::_foreach_mul_(m, at::Scalar(beta1));
  at::_foreach_add_(m, scaled(g, 1 - beta1));
  at::_foreach_mul_(v, at::Scalar(beta2));
  Tensors g2 = scaled(g, 1 - beta2);
  at::_foreach_mul_(g2, g);
  at::_foreach_add_(v, g2);
  if (amsgrad) {
    at::_foreach_maximum_(vmax, v);
  }
  Tensors denom = at::_foreach_sqrt(amsgrad ? vmax : v);
  at::_foreach_div_(denom, bc2_sqrt);
  at::_foreach_add_(denom, at::Scalar(eps));
  Tensors update = at::_foreach_mul(m, neg_step_size);
  at::_foreach_div_(update, denom);
  at::_foreach_add_(p, update);
  write_back(params, p);
  write_back(exp_avgs, m);
  write_back(exp_avg_sqs, v);
  if (amsgrad) {
    write_back(max_exp_avg_sqs, vmax);
  }
}

}  // namespace

void adam_step_generic(at::TensorList params,
                       at::TensorList grads,
                       at::TensorList exp_avgs,
                       at::TensorList exp_avg_sqs,
                       at::TensorList max_exp_avg_sqs,
                       at::IntArrayRef steps,
                       double lr,
                       double beta1,
                       double beta2,
                       double eps,
                       double weight_decay,
                       bool amsgrad,
                       bool maximize,
                       bool decoupled_weight_decay,
                       bool keras_epsilon) {
  check_adam_step_args(device_of(params),
                       params,
                       grads,
                       exp_avgs,
                       exp_avg_sqs,
                       max_exp_avg_sqs,
                       steps,
                       lr,
                       beta1,
                       beta2,
                       eps,
                       amsgrad);
  if (params.empty()) {
    return;
  }
  // Below autograd, as the fused kernels are: the parameters are leaves
  // that require grad, updated in place.
  const at::AutoDispatchBelowADInplaceOrView guard;
  std::vector<at::Scalar> neg_step_size(params.size()), bc2_sqrt(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto bc = adam_bias_correction(
        lr, beta1, beta2, static_cast<double>(steps[i]), keras_epsilon);
    neg_step_size[i] = -bc.step_size;
    bc2_sqrt[i] = bc.bc2_sqrt;
  }
  adam_update(params,
              grads,
              exp_avgs,
              exp_avg_sqs,
              max_exp_avg_sqs,
              neg_step_size,
              bc2_sqrt,
              lr,
              beta1,
              beta2,
              eps,
              weight_decay,
              amsgrad,
              maximize,
              decoupled_weight_decay);
}

void adam_step_capturable_generic(at::TensorList params,
                                  at::TensorList grads,
                                  at::TensorList exp_avgs,
                                  at::TensorList exp_avg_sqs,
                                  at::TensorList max_exp_avg_sqs,
                                  at::TensorList state_steps,
                                  double lr,
                                  double beta1,
                                  double beta2,
                                  double eps,
                                  double weight_decay,
                                  bool amsgrad,
                                  bool maximize,
                                  bool decoupled_weight_decay,
                                  bool keras_epsilon) {
  check_adam_capturable_args(device_of(params),
                             params,
                             grads,
                             exp_avgs,
                             exp_avg_sqs,
                             max_exp_avg_sqs,
                             state_steps,
                             lr,
                             beta1,
                             beta2,
                             eps,
                             amsgrad);
  if (params.empty()) {
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
  Tensors bc1 = at::_foreach_pow(at::Scalar(beta1), t);
  at::_foreach_neg_(bc1);
  at::_foreach_add_(bc1, at::Scalar(1));
  Tensors bc2 = at::_foreach_pow(at::Scalar(beta2), t);
  at::_foreach_neg_(bc2);
  at::_foreach_add_(bc2, at::Scalar(1));
  Tensors bc2_sqrt = at::_foreach_sqrt(bc2);
  // -lr / bc1, times sqrt(bc2) in Keras's mode (whose bc2_sqrt is then 1).
  Tensors neg_step_size = at::_foreach_reciprocal(bc1);
  at::_foreach_mul_(neg_step_size, at::Scalar(-lr));
  if (keras_epsilon) {
    at::_foreach_mul_(neg_step_size, bc2_sqrt);
    at::_foreach_zero_(bc2_sqrt);
    at::_foreach_add_(bc2_sqrt, at::Scalar(1));
  }
  adam_update(params,
              grads,
              exp_avgs,
              exp_avg_sqs,
              max_exp_avg_sqs,
              neg_step_size,
              bc2_sqrt,
              lr,
              beta1,
              beta2,
              eps,
              weight_decay,
              amsgrad,
              maximize,
              decoupled_weight_decay);
}

void sgd_step_generic(at::TensorList params,
                      at::TensorList grads,
                      at::TensorList momentum_buffers,
                      double lr,
                      double momentum,
                      double dampening,
                      double weight_decay,
                      bool nesterov,
                      bool maximize,
                      bool is_first_step) {
  check_sgd_step_args(device_of(params),
                      params,
                      grads,
                      momentum_buffers,
                      lr,
                      momentum,
                      dampening,
                      nesterov);
  if (params.empty()) {
    return;
  }
  const at::AutoDispatchBelowADInplaceOrView guard;
  Tensors p = in_opmath(params);
  const Tensors g0 = in_opmath(grads);
  Tensors g = maximize ? at::_foreach_neg(g0) : g0;
  if (weight_decay != 0) {
    g = at::_foreach_add(g, scaled(p, weight_decay));
  }
  if (momentum != 0) {
    Tensors buf = in_opmath(momentum_buffers);
    if (is_first_step) {
      at::_foreach_copy_(buf, g);
    } else {
      at::_foreach_mul_(buf, at::Scalar(momentum));
      at::_foreach_add_(buf, scaled(g, 1 - dampening));
    }
    g = nesterov ? at::_foreach_add(g, scaled(buf, momentum)) : buf;
    write_back(momentum_buffers, buf);
  }
  at::_foreach_add_(p, scaled(g, -lr));
  write_back(params, p);
}

}  // namespace normopt::ops::detail

NORMOPT_LIBRARY_IMPL(CompositeExplicitAutograd, m) {
  m.impl("adam_step_", &normopt::ops::detail::adam_step_generic);
  m.impl("adam_step_capturable_",
         &normopt::ops::detail::adam_step_capturable_generic);
  m.impl("sgd_step_", &normopt::ops::detail::sgd_step_generic);
}
