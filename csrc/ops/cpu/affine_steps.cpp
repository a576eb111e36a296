// normopt::ops::affine_mse_steps_ on the CPU: each batch's gradient in plain
// loops over the rows (a few hundred operations for a small model), then the
// optimizer update through the same fused pass as adam_step_ and sgd_step_
// (optim_step_kernel.cpp), so an update equals the per-step op's bit for bit.
#include <normopt/ops/detail/affine_steps.h>

#include "../../util/prefetch.h"
#include "../adam_bias_correction.h"
#include "optim_step_kernel.h"

#include <ATen/Dispatch.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace normopt::ops {
namespace {

void check_param(const AffineStepParam& p,
                 c10::ScalarType dtype,
                 const char* what) {
  TORCH_CHECK(
      p.param.defined() && p.grad.defined() && p.param.device().is_cpu() &&
          p.grad.device().is_cpu() && p.param.is_contiguous() &&
          p.grad.is_contiguous() && p.param.scalar_type() == dtype &&
          p.grad.scalar_type() == dtype && p.param.sizes() == p.grad.sizes(),
      "normopt::ops::affine_mse_steps_: the ",
      what,
      " and its gradient must be contiguous CPU tensors of one shape "
      "and of the rows' dtype ",
      dtype);
  if (p.exp_avg.defined()) {
    TORCH_CHECK(p.step != nullptr && p.exp_avg_sq.defined() &&
                    (p.adam.amsgrad == p.max_exp_avg_sq.defined()),
                "normopt::ops::affine_mse_steps_: the ",
                what,
                "'s Adam state is incomplete (step count, exp_avg_sq and, "
                "with amsgrad, max_exp_avg_sq are needed)");
  } else {
    TORCH_CHECK(p.sgd.momentum == 0 || p.momentum_buffer.defined(),
                "normopt::ops::affine_mse_steps_: the ",
                what,
                " has momentum ",
                p.sgd.momentum,
                " but no momentum buffer");
  }
}

void check_rows(const AffineStepRows& r, const AffineStepParam& weight) {
  const auto dtype = weight.param.scalar_type();
  TORCH_CHECK(r.x.dim() == 2 && r.y.dim() == 2 && r.x.device().is_cpu() &&
                  r.y.device().is_cpu() && r.x.is_contiguous() &&
                  r.y.is_contiguous() && r.x.scalar_type() == dtype &&
                  r.y.scalar_type() == dtype &&
                  (dtype == at::kFloat || dtype == at::kDouble),
              "normopt::ops::affine_mse_steps_: x and y must be contiguous 2-D "
              "float32 or float64 CPU tensors of the weight's dtype");
  TORCH_CHECK(r.x.size(0) == r.y.size(0) && weight.param.dim() == 2 &&
                  weight.param.size(0) == r.y.size(1) &&
                  weight.param.size(1) == r.x.size(1),
              "normopt::ops::affine_mse_steps_: x ",
              r.x.sizes(),
              ", y ",
              r.y.sizes(),
              " and weight ",
              weight.param.sizes(),
              " do not fit x Wᵀ + b ≈ y");
  TORCH_CHECK(!r.order.defined() ||
                  (r.order.scalar_type() == at::kLong && r.order.is_cpu() &&
                   r.order.is_contiguous() && r.order.numel() == r.x.size(0)),
              "normopt::ops::affine_mse_steps_: the order must hold one int64 "
              "row index per row");
  TORCH_CHECK(r.batch >= 1,
              "normopt::ops::affine_mse_steps_: batch must be >= 1, got ",
              r.batch);
}

// The gradient of one batch into gw (k × p) and gb (k); returns whether the
// loss and every gradient element are finite. P and K > 0 fix p and k at
// compile time (a small model's loops unrolled, its gradient in registers);
// 0 takes them from p_any and k_any.
template <typename T, int P, int K>
bool batch_gradient(const T* __restrict__ x,
                    const T* __restrict__ y,
                    int64_t n,
                    const int64_t* __restrict__ order,
                    int64_t start,
                    int64_t len,
                    int64_t p_any,
                    int64_t k_any,
                    const T* __restrict__ w,
                    const T* __restrict__ b,
                    T* __restrict__ gw,
                    T* __restrict__ gb) {
  const int64_t p = P > 0 ? P : p_any;
  const int64_t k = K > 0 ? K : k_any;
  std::fill(gw, gw + k * p, T(0));
  std::fill(gb, gb + k, T(0));
  T loss = 0;
  for (int64_t r = start; r < start + len; ++r) {
    const int64_t row = order ? order[r] : r;
    // Across the end of the batch: the next batch's rows come next.
    util::prefetch_row_ahead(order, r, n, x, p, y, k);
    const T* xr = x + row * p;
    const T* yr = y + row * k;
    for (int64_t j = 0; j < k; ++j) {
      const T* wj = w + j * p;
      T z = 0;
      for (int64_t i = 0; i < p; ++i) {
        z += xr[i] * wj[i];
      }
      const T d = (b ? z + b[j] : z) - yr[j];
      loss += d * d;
      T* gj = gw + j * p;
      for (int64_t i = 0; i < p; ++i) {
        gj[i] += d * xr[i];
      }
      gb[j] += d;
    }
  }
  const T c = T(2.0 / static_cast<double>(len * k));
  bool finite = std::isfinite(loss / static_cast<T>(len * k));
  for (int64_t i = 0; i < k * p; ++i) {
    gw[i] *= c;
    finite = finite && std::isfinite(gw[i]);
  }
  for (int64_t j = 0; j < k; ++j) {
    gb[j] *= c;
    finite = finite && std::isfinite(gb[j]);
  }
  return finite;
}

// The optimizer's update of the parameters given their gradients: the fused
// pass of adam_step_ / sgd_step_, with the same per-tensor constants.
class Updater {
 public:
  explicit Updater(std::vector<AffineStepParam*> params)
      : params_(std::move(params)) {}

  void step() {
    if (params_[0]->exp_avg.defined()) {
      adam();
    } else {
      sgd();
    }
  }

 private:
  // Weight and bias usually share their options and step count: one bias
  // correction and one pass of the kernel serve both. Param groups may give
  // them their own options: a pass each then.
  void adam() {
    for (size_t i = 0; i < params_.size();) {
      const auto& o = params_[i]->adam;
      const int64_t step = *params_[i]->step + 1;
      const auto bc = detail::adam_bias_correction(
          o.lr, o.beta1, o.beta2, static_cast<double>(step), o.keras_epsilon);
      adam_.clear();
      size_t j = i;
      for (; j < params_.size() && same(params_[j]->adam, o) &&
             *params_[j]->step + 1 == step;
           ++j) {
        auto* p = params_[j];
        *p->step = step;
        adam_.push_back(
            cpu::AdamTensor{p->param.scalar_type(),
                            p->param.numel(),
                            p->param.data_ptr(),
                            p->grad.const_data_ptr(),
                            p->exp_avg.data_ptr(),
                            p->exp_avg_sq.data_ptr(),
                            o.amsgrad ? p->max_exp_avg_sq.data_ptr() : nullptr,
                            bc.step_size,
                            bc.bc2_sqrt});
      }
      cpu::adam_apply(adam_, o);
      i = j;
    }
  }

  void sgd() {
    for (size_t i = 0; i < params_.size();) {
      const auto o = params_[i]->sgd;
      sgd_.clear();
      size_t j = i;
      for (; j < params_.size() && same(params_[j]->sgd, o); ++j) {
        auto* p = params_[j];
        sgd_.push_back(cpu::SgdTensor{p->param.scalar_type(),
                                      p->param.numel(),
                                      p->param.data_ptr(),
                                      p->grad.const_data_ptr(),
                                      p->momentum_buffer.defined()
                                          ? p->momentum_buffer.data_ptr()
                                          : nullptr});
        p->sgd.is_first_step = false;
      }
      cpu::sgd_apply(sgd_, o);
      i = j;
    }
  }

  static bool same(const AdamStepOptions& a, const AdamStepOptions& b) {
    return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 &&
           a.eps == b.eps && a.weight_decay == b.weight_decay &&
           a.amsgrad == b.amsgrad && a.maximize == b.maximize &&
           a.decoupled_weight_decay == b.decoupled_weight_decay &&
           a.keras_epsilon == b.keras_epsilon;
  }
  static bool same(const SgdStepOptions& a, const SgdStepOptions& b) {
    return a.lr == b.lr && a.momentum == b.momentum &&
           a.dampening == b.dampening && a.weight_decay == b.weight_decay &&
           a.nesterov == b.nesterov && a.maximize == b.maximize &&
           a.is_first_step == b.is_first_step;
  }

  std::vector<AffineStepParam*> params_;
  std::vector<cpu::AdamTensor> adam_;
  std::vector<cpu::SgdTensor> sgd_;
};

}  // namespace

int64_t affine_mse_steps_(const AffineStepRows& rows,
                          int64_t first,
                          int64_t end,
                          AffineStepParam& weight,
                          AffineStepParam* bias) {
  const auto dtype = weight.param.scalar_type();
  check_param(weight, dtype, "weight");
  if (bias) {
    check_param(*bias, dtype, "bias");
    TORCH_CHECK(
        bias->param.dim() == 1 && bias->param.size(0) == weight.param.size(0),
        "normopt::ops::affine_mse_steps_: the bias has shape ",
        bias->param.sizes(),
        "; expected (",
        weight.param.size(0),
        ")");
    TORCH_CHECK(bias->exp_avg.defined() == weight.exp_avg.defined(),
                "normopt::ops::affine_mse_steps_: weight and bias need the "
                "same optimizer (Adam state on both or on neither)");
  }
  check_rows(rows, weight);
  const int64_t n = rows.x.size(0), p = rows.x.size(1), k = rows.y.size(1);
  const int64_t batches = (n + rows.batch - 1) / rows.batch;
  TORCH_CHECK(0 <= first && first <= end && end <= batches,
              "normopt::ops::affine_mse_steps_: batches [",
              first,
              ", ",
              end,
              ") are not within the ",
              batches,
              " batches of ",
              n,
              " rows");
  std::vector<AffineStepParam*> params{&weight};
  if (bias) {
    params.push_back(bias);
  }
  Updater updater(std::move(params));
  const int64_t* order =
      rows.order.defined() ? rows.order.const_data_ptr<int64_t>() : nullptr;
  int64_t b = first;
  AT_DISPATCH_FLOATING_TYPES(dtype, "normopt::ops::affine_mse_steps_", [&] {
    const auto* x = rows.x.const_data_ptr<scalar_t>();
    const auto* y = rows.y.const_data_ptr<scalar_t>();
    const auto* w = weight.param.const_data_ptr<scalar_t>();
    auto* gw = weight.grad.data_ptr<scalar_t>();
    const scalar_t* bp =
        bias ? bias->param.const_data_ptr<scalar_t>() : nullptr;
    // Without a bias its gradient goes to a scratch buffer.
    std::vector<scalar_t> gb_scratch(static_cast<size_t>(bias ? 0 : k));
    scalar_t* gb = bias ? bias->grad.data_ptr<scalar_t>() : gb_scratch.data();
    for (; b < end; ++b) {
      const int64_t start = b * rows.batch;
      const int64_t len = std::min(rows.batch, n - start);
      if (!affine_mse_gradient(
              x, y, n, order, start, len, p, k, w, bp, gw, gb)) {
        return;
      }
      updater.step();
    }
  });
  return b;
}

template <typename T>
bool affine_mse_gradient(const T* x,
                         const T* y,
                         int64_t n,
                         const int64_t* order,
                         int64_t start,
                         int64_t len,
                         int64_t p,
                         int64_t k,
                         const T* w,
                         const T* b,
                         T* gw,
                         T* gb) {
  // One target and up to 8 features, the common small model: unrolled.
  if (k == 1) {
    switch (p) {
#define NORMOPT_SMALL_AFFINE(P)     \
  case P:                           \
    return batch_gradient<T, P, 1>( \
        x, y, n, order, start, len, p, k, w, b, gw, gb);
      NORMOPT_SMALL_AFFINE(1)
      NORMOPT_SMALL_AFFINE(2)
      NORMOPT_SMALL_AFFINE(3)
      NORMOPT_SMALL_AFFINE(4)
      NORMOPT_SMALL_AFFINE(5)
      NORMOPT_SMALL_AFFINE(6)
      NORMOPT_SMALL_AFFINE(7)
      NORMOPT_SMALL_AFFINE(8)
#undef NORMOPT_SMALL_AFFINE
      default:
        break;
    }
  }
  return batch_gradient<T, 0, 0>(
      x, y, n, order, start, len, p, k, w, b, gw, gb);
}

#define NORMOPT_AFFINE_MSE_GRADIENT(T)                 \
  template bool affine_mse_gradient<T>(const T*,       \
                                       const T*,       \
                                       int64_t,        \
                                       const int64_t*, \
                                       int64_t,        \
                                       int64_t,        \
                                       int64_t,        \
                                       int64_t,        \
                                       const T*,       \
                                       const T*,       \
                                       T*,             \
                                       T*);
NORMOPT_AFFINE_MSE_GRADIENT(float)
NORMOPT_AFFINE_MSE_GRADIENT(double)
#undef NORMOPT_AFFINE_MSE_GRADIENT

}  // namespace normopt::ops
