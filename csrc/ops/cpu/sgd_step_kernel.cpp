// CPU kernel of normopt::sgd_step_: one fused, vectorized pass per tensor.
#include "../optim_step_checks.h"
#include "multi_tensor.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <vector>

namespace normopt::ops {
namespace {

struct Hyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first;
};

// PyTorch's order: decay, momentum buffer (set on the first step, blended
// after), Nesterov look-ahead, then p += -lr * d.
template <typename T>
inline void sgd_scalar(T& p, T g, T* buf, const Hyper& h) {
  if (h.maximize) {
    g = -g;
  }
  if (h.weight_decay != 0) {
    g = g + T(h.weight_decay) * p;
  }
  if (buf) {
    *buf = h.first ? g : *buf * T(h.momentum) + T(1 - h.dampening) * g;
    g = h.nesterov ? g + T(h.momentum) * *buf : *buf;
  }
  p = p + T(-h.lr) * g;
}

template <typename scalar_t>
void sgd_range_vec(scalar_t* p,
                   const scalar_t* g,
                   scalar_t* buf,
                   int64_t begin,
                   int64_t end,
                   const Hyper& h) {
  using Vec = at::vec::Vectorized<scalar_t>;
  const Vec wd(scalar_t(h.weight_decay)), mom(scalar_t(h.momentum));
  const Vec damp(scalar_t(1 - h.dampening)), neg_lr(scalar_t(-h.lr));
  int64_t i = begin;
  for (; i + Vec::size() <= end; i += Vec::size()) {
    Vec gi = Vec::loadu(g + i);
    Vec pi = Vec::loadu(p + i);
    if (h.maximize) {
      gi = gi.neg();
    }
    if (h.weight_decay != 0) {
      gi = gi + wd * pi;
    }
    if (buf) {
      Vec bi = h.first ? gi : Vec::loadu(buf + i) * mom + damp * gi;
      bi.store(buf + i);
      gi = h.nesterov ? gi + mom * bi : bi;
    }
    pi = pi + neg_lr * gi;
    pi.store(p + i);
  }
  for (; i < end; ++i) {
    sgd_scalar<scalar_t>(p[i], g[i], buf ? buf + i : nullptr, h);
  }
}

template <typename scalar_t>
void sgd_range_reduced(scalar_t* p,
                       const scalar_t* g,
                       scalar_t* buf,
                       int64_t begin,
                       int64_t end,
                       const Hyper& h) {
  using opmath_t = at::opmath_type<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    opmath_t pi = p[i];
    opmath_t bi = buf ? static_cast<opmath_t>(buf[i]) : opmath_t(0);
    sgd_scalar<opmath_t>(
        pi, static_cast<opmath_t>(g[i]), buf ? &bi : nullptr, h);
    p[i] = pi;
    if (buf) {
      buf[i] = bi;
    }
  }
}

void sgd_step_cpu(at::TensorList params,
                  at::TensorList grads,
                  at::TensorList momentum_buffers,
                  double lr,
                  double momentum,
                  double dampening,
                  double weight_decay,
                  bool nesterov,
                  bool maximize,
                  bool is_first_step) {
  constexpr const char* kOp = "normopt::sgd_step_";
  detail::check_step_lists(kOp,
                           at::kCPU,
                           params,
                           {{"grads", grads}},
                           {{"momentum_buffers", momentum_buffers}});
  TORCH_CHECK(lr >= 0, kOp, ": invalid learning rate ", lr);
  TORCH_CHECK(momentum == 0 || momentum_buffers.size() == params.size(),
              kOp,
              ": momentum ",
              momentum,
              " needs one momentum buffer per parameter, got ",
              momentum_buffers.size());
  TORCH_CHECK(!nesterov || (momentum > 0 && dampening == 0),
              kOp,
              ": Nesterov momentum requires a momentum and zero dampening");
  const Hyper h{
      lr, momentum, dampening, weight_decay, nesterov, maximize, is_first_step};
  const bool with_buf = momentum != 0;
  std::vector<int64_t> numels(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    numels[i] = params[i].numel();
  }
  cpu::for_each_chunk(numels, [&](size_t i, int64_t begin, int64_t end) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, params[i].scalar_type(), kOp, [&] {
          auto* p = params[i].data_ptr<scalar_t>();
          const auto* g = grads[i].const_data_ptr<scalar_t>();
          auto* b =
              with_buf ? momentum_buffers[i].data_ptr<scalar_t>() : nullptr;
          if constexpr (std::is_same_v<scalar_t, float> ||
                        std::is_same_v<scalar_t, double>) {
            sgd_range_vec(p, g, b, begin, end, h);
          } else {
            sgd_range_reduced(p, g, b, begin, end, h);
          }
        });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(normopt, CPU, m) {
  m.impl("sgd_step_", &sgd_step_cpu);
}

}  // namespace normopt::ops
