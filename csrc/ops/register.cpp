// The one NORMOPT_LIBRARY block (TORCH_LIBRARY for the `normopt` namespace,
// see library.h): every schema is defined here, so the op surface reads in
// one place. Kernels register per dispatch key in their own files.
#include <torch/library.h>

#include "../util/library.h"

NORMOPT_LIBRARY(m) {
  m.def(
      "moments(Tensor x, int[] dims) -> (Tensor count, Tensor mean, Tensor "
      "m2)");
  m.def(
      "merge_moments(Tensor count_a, Tensor mean_a, Tensor m2_a, "
      "Tensor count_b, Tensor mean_b, Tensor m2_b) "
      "-> (Tensor count, Tensor mean, Tensor m2)");
  m.def(
      "scale_from_variance(Tensor variance, Tensor mean, Tensor count, "
      "float min_scale) -> Tensor");
  m.def("standardize(Tensor x, Tensor mean, Tensor scale) -> Tensor");
  m.def("destandardize(Tensor z, Tensor mean, Tensor scale) -> Tensor");
  m.def(
      "adam_step_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, "
      "Tensor(c!)[] exp_avg_sqs, Tensor(d!)[] max_exp_avg_sqs, int[] steps, *, "
      "float lr, float beta1, float beta2, float eps, float weight_decay, "
      "bool amsgrad, bool maximize, bool decoupled_weight_decay, "
      "bool keras_epsilon) -> ()");
  // adam_step_ with the step counts in tensors on the parameters' device,
  // advanced by the op: nothing is read on the host, so the step can be
  // captured in a CUDA graph (torch.optim's capturable=True).
  m.def(
      "adam_step_capturable_(Tensor(a!)[] params, Tensor[] grads, "
      "Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "Tensor(d!)[] max_exp_avg_sqs, Tensor(e!)[] state_steps, *, float lr, "
      "float beta1, float beta2, float eps, float weight_decay, bool amsgrad, "
      "bool maximize, bool decoupled_weight_decay, bool keras_epsilon) -> ()");
  m.def(
      "sgd_step_(Tensor(a!)[] params, Tensor[] grads, "
      "Tensor(b!)[] momentum_buffers, *, float lr, float momentum, "
      "float dampening, float weight_decay, bool nesterov, bool maximize, "
      "bool is_first_step) -> ()");
}
