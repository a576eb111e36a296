// The arithmetic of the fused optimizer steps, compiled once per CPU
// capability (see optim_step_kernel.h and CMakeLists.txt). Everything here
// lives in a capability-named inline namespace so the builds never collide.
#include "optim_step_kernel.h"
#include "multi_tensor.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#ifndef CPU_CAPABILITY
#define CPU_CAPABILITY DEFAULT
#endif
#define NORMOPT_CONCAT_(a, b) a##_##b
#define NORMOPT_CONCAT(a, b) NORMOPT_CONCAT_(a, b)

namespace normopt::ops::cpu {
inline namespace CPU_CAPABILITY {
namespace {

// The update of one element, in opmath_t; the vector loop below is the same
// sequence of operations, so head, body and tail round identically.
template <typename T>
inline void adam_scalar(T& p,
                        T g,
                        T& m,
                        T& v,
                        T* vmax,
                        const AdamStepOptions& h,
                        const AdamTensor& t) {
  if (h.maximize) {
    g = -g;
  }
  if (h.weight_decay != 0) {
    if (h.decoupled_weight_decay) {
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
                    const AdamStepOptions& h,
                    const AdamTensor& t) {
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
      if (h.decoupled_weight_decay) {
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
                        const AdamStepOptions& h,
                        const AdamTensor& t) {
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

// PyTorch's order: decay, momentum buffer (set on the first step, blended
// after), Nesterov look-ahead, then p += -lr * d.
template <typename T>
inline void sgd_scalar(T& p, T g, T* buf, const SgdStepOptions& h) {
  if (h.maximize) {
    g = -g;
  }
  if (h.weight_decay != 0) {
    g = g + T(h.weight_decay) * p;
  }
  if (buf) {
    *buf = h.is_first_step ? g : *buf * T(h.momentum) + T(1 - h.dampening) * g;
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
                   const SgdStepOptions& h) {
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
      Vec bi = h.is_first_step ? gi : Vec::loadu(buf + i) * mom + damp * gi;
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
                       const SgdStepOptions& h) {
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

}  // namespace
}  // namespace CPU_CAPABILITY

void NORMOPT_CONCAT(adam_apply,
                    CPU_CAPABILITY)(c10::ArrayRef<AdamTensor> tensors,
                                    const AdamStepOptions& h) {
  for_each_chunk(tensors, [&](size_t i, int64_t begin, int64_t end) {
    const auto& t = tensors[i];
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, t.dtype, "normopt::adam_step_", [&] {
          auto* p = static_cast<scalar_t*>(t.param);
          const auto* g = static_cast<const scalar_t*>(t.grad);
          auto* m = static_cast<scalar_t*>(t.exp_avg);
          auto* v = static_cast<scalar_t*>(t.exp_avg_sq);
          auto* vm = static_cast<scalar_t*>(t.max_exp_avg_sq);
          if constexpr (std::is_same_v<scalar_t, float> ||
                        std::is_same_v<scalar_t, double>) {
            adam_range_vec(p, g, m, v, vm, begin, end, h, t);
          } else {
            adam_range_reduced(p, g, m, v, vm, begin, end, h, t);
          }
        });
  });
}

void NORMOPT_CONCAT(sgd_apply, CPU_CAPABILITY)(c10::ArrayRef<SgdTensor> tensors,
                                               const SgdStepOptions& h) {
  for_each_chunk(tensors, [&](size_t i, int64_t begin, int64_t end) {
    const auto& t = tensors[i];
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, t.dtype, "normopt::sgd_step_", [&] {
          auto* p = static_cast<scalar_t*>(t.param);
          const auto* g = static_cast<const scalar_t*>(t.grad);
          auto* b = static_cast<scalar_t*>(t.momentum_buffer);
          if constexpr (std::is_same_v<scalar_t, float> ||
                        std::is_same_v<scalar_t, double>) {
            sgd_range_vec(p, g, b, begin, end, h);
          } else {
            sgd_range_reduced(p, g, b, begin, end, h);
          }
        });
  });
}

}  // namespace normopt::ops::cpu
