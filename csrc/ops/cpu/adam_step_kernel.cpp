// CPU kernel of normopt::adam_step_: one fused, vectorized pass per tensor,
// chunks shared across threads (see multi_tensor.h).
#include "../optim_step_checks.h"
#include "multi_tensor.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace normopt::ops {
namespace {

struct Hyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;
};

// Per-tensor constants: the bias corrections depend on each tensor's step.
struct PerTensor {
  double step_size;  // lr / (1 - b1^t), or Keras's alpha
  double bc2_sqrt;   // sqrt(1 - b2^t); 1 in Keras mode
};

// The update of one element, in opmath_t; the vector loop below is the same
// sequence of operations, so head, body and tail round identically.
template <typename T>
inline void adam_scalar(
    T& p, T g, T& m, T& v, T* vmax, const Hyper& h, const PerTensor& t) {
  if (h.maximize) {
    g = -g;
  }
  if (h.weight_decay != 0) {
    if (h.decoupled) {
      p = p * T(1 - h.lr * h.weight_decay);
    } else {
      g = g + T(h.weight_decay) * p;
    }
  }
  m = m * T(h.beta1) + g * T(1 - h.beta1);
  v = v * T(h.beta2) + T(1 - h.beta2) * g * g;
  T vv = v;
  if (vmax) {
    *vmax = std::max(*vmax, v);
    vv = *vmax;
  }
  const T denom = std::sqrt(vv) / T(t.bc2_sqrt) + T(h.eps);
  p = p + T(-t.step_size) * m / denom;
}

template <typename scalar_t>
void adam_range_vec(scalar_t* p,
                    const scalar_t* g,
                    scalar_t* m,
                    scalar_t* v,
                    scalar_t* vmax,
                    int64_t begin,
                    int64_t end,
                    const Hyper& h,
                    const PerTensor& t) {
  using Vec = at::vec::Vectorized<scalar_t>;
  const Vec b1(scalar_t(h.beta1)), one_minus_b1(scalar_t(1 - h.beta1));
  const Vec b2(scalar_t(h.beta2)), one_minus_b2(scalar_t(1 - h.beta2));
  const Vec wd(scalar_t(h.weight_decay));
  const Vec decay(scalar_t(1 - h.lr * h.weight_decay));
  const Vec bc2_sqrt(scalar_t(t.bc2_sqrt)), eps(scalar_t(h.eps));
  const Vec neg_step(scalar_t(-t.step_size));
  int64_t i = begin;
  for (; i + Vec::size() <= end; i += Vec::size()) {
    Vec gi = Vec::loadu(g + i);
    Vec pi = Vec::loadu(p + i);
    if (h.maximize) {
      gi = gi.neg();
    }
    if (h.weight_decay != 0) {
      if (h.decoupled) {
        pi = pi * decay;
      } else {
        gi = gi + wd * pi;
      }
    }
    Vec mi = Vec::loadu(m + i) * b1 + gi * one_minus_b1;
    Vec vi = Vec::loadu(v + i) * b2 + one_minus_b2 * gi * gi;
    Vec vv = vi;
    if (vmax) {
      vv = at::vec::maximum(Vec::loadu(vmax + i), vi);
      vv.store(vmax + i);
    }
    const Vec denom = vv.sqrt() / bc2_sqrt + eps;
    pi = pi + neg_step * mi / denom;
    pi.store(p + i);
    mi.store(m + i);
    vi.store(v + i);
  }
  for (; i < end; ++i) {
    adam_scalar<scalar_t>(
        p[i], g[i], m[i], v[i], vmax ? vmax + i : nullptr, h, t);
  }
}

// float16/bfloat16: load, compute in float, store back.
template <typename scalar_t>
void adam_range_reduced(scalar_t* p,
                        const scalar_t* g,
                        scalar_t* m,
                        scalar_t* v,
                        scalar_t* vmax,
                        int64_t begin,
                        int64_t end,
                        const Hyper& h,
                        const PerTensor& t) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    opmath_t pi = p[i], mi = m[i], vi = v[i];
    opmath_t vm = vmax ? static_cast<opmath_t>(vmax[i]) : opmath_t(0);
    adam_scalar<opmath_t>(
        pi, static_cast<opmath_t>(g[i]), mi, vi, vmax ? &vm : nullptr, h, t);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      vmax[i] = vm;
    }
  }
}

void adam_step_cpu(at::TensorList params,
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
  constexpr const char* kOp = "normopt::adam_step_";
  detail::check_step_lists(
      kOp,
      at::kCPU,
      params,
      {{"grads", grads}, {"exp_avgs", exp_avgs}, {"exp_avg_sqs", exp_avg_sqs}},
      {{"max_exp_avg_sqs", max_exp_avg_sqs}});
  TORCH_CHECK(!amsgrad || max_exp_avg_sqs.size() == params.size(),
              kOp,
              ": amsgrad needs one max_exp_avg_sqs tensor per parameter, got ",
              max_exp_avg_sqs.size());
  TORCH_CHECK(steps.size() == params.size(),
              kOp,
              ": expected ",
              params.size(),
              " step counts, got ",
              steps.size());
  TORCH_CHECK(lr >= 0, kOp, ": invalid learning rate ", lr);
  TORCH_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
              kOp,
              ": betas must be in [0, 1), got (",
              beta1,
              ", ",
              beta2,
              ")");
  TORCH_CHECK(eps >= 0, kOp, ": invalid eps ", eps);
  const Hyper h{lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                amsgrad,
                maximize,
                decoupled_weight_decay};
  std::vector<PerTensor> per(params.size());
  std::vector<int64_t> numels(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    TORCH_CHECK(steps[i] >= 1,
                kOp,
                ": steps[",
                i,
                "] is ",
                steps[i],
                "; step counts start at 1");
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(steps[i]));
    const double bc2 = 1 - std::pow(beta2, static_cast<double>(steps[i]));
    per[i] = keras_epsilon ? PerTensor{lr * std::sqrt(bc2) / bc1, 1.0}
                           : PerTensor{lr / bc1, std::sqrt(bc2)};
    numels[i] = params[i].numel();
  }
  const bool ams = amsgrad;
  cpu::for_each_chunk(numels, [&](size_t i, int64_t begin, int64_t end) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, params[i].scalar_type(), kOp, [&] {
          auto* p = params[i].data_ptr<scalar_t>();
          const auto* g = grads[i].const_data_ptr<scalar_t>();
          auto* m = exp_avgs[i].data_ptr<scalar_t>();
          auto* v = exp_avg_sqs[i].data_ptr<scalar_t>();
          auto* vm = ams ? max_exp_avg_sqs[i].data_ptr<scalar_t>() : nullptr;
          if constexpr (std::is_same_v<scalar_t, float> ||
                        std::is_same_v<scalar_t, double>) {
            adam_range_vec(p, g, m, v, vm, begin, end, h, per[i]);
          } else {
            adam_range_reduced(p, g, m, v, vm, begin, end, h, per[i]);
          }
        });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(normopt, CPU, m) {
  m.impl("adam_step_", &adam_step_cpu);
}

}  // namespace normopt::ops
