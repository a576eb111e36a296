#include "simulate.h"

#include "../batches.h"
#include "../mode_guard.h"
#include "batch_moments.h"

#include <normopt/ops/detail/affine_steps.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace normopt::train::detail {
namespace {

constexpr int64_t kMaxPoints = 5000;
constexpr int64_t kModuleReplayRows = 1024;
// Above this MSE (or a non-finite one) a run has diverged.
constexpr double kHuge = 1e300;

// The thinning of recorded epochs: every `every`-th epoch and the last.
int64_t record_every(int64_t epochs) {
  return std::max<int64_t>(1, (epochs + kMaxPoints - 1) / kMaxPoints);
}

const double* ptr(const at::Tensor& t) {
  return t.data_ptr<double>();
}

// Follows a run's MSE, step by step or epoch by epoch: the trajectory and
// the first step within 1.2x of the optimum.
class Recorder {
 public:
  Recorder(const Plan& plan, double optimum, int64_t batches, Run& run)
      : plan_(plan),
        target_(kConvergedRatio * optimum),
        optimum_(optimum),
        every_(record_every((plan.steps + batches - 1) / batches)),
        batches_(batches),
        run_(run) {}

  // Records the MSE after `step` steps; false once the run has diverged.
  bool after(int64_t step, double mse) {
    if (!std::isfinite(mse) || mse > kHuge) {
      // Within the plan the run diverges; beyond it (the search for
      // steps_needed) it only never gets there.
      if (step <= plan_.steps) {
        run_.finite = false;
        run_.final_mse = std::numeric_limits<double>::infinity();
        run_.trajectory.push_back({step, run_.final_mse});
      }
      diverged_ = true;
      return false;
    }
    if (step == 0) {
      run_.initial_mse = mse;
    }
    if (run_.steps_needed < 0 && mse <= target_) {
      run_.steps_needed = step;
    }
    if (step <= plan_.steps) {
      const int64_t epoch = (step + batches_ - 1) / batches_;
      if (step == 0 || step == plan_.steps || epoch % every_ == 0) {
        run_.trajectory.push_back({step, mse});
      }
      if (step == plan_.steps) {
        run_.final_mse = mse;
      }
    }
    if (step <= plan_.horizon / 2 || half_ == 0) {
      half_ = mse;
      half_step_ = step;
    }
    last_ = mse;
    last_step_ = step;
    run_.steps_searched = step;
    return true;
  }

  // Whether stepping may stop after `step`.
  bool done(int64_t step) const {
    return step >= plan_.horizon ||
           (step >= plan_.steps && run_.steps_needed >= 0);
  }

  // Beyond the horizon: extrapolates steps_needed from the rate at which
  // the excess over the optimum shrank over the horizon's second half.
  void finish() {
    if (diverged_ || run_.steps_needed >= 0 || last_step_ <= half_step_) {
      return;
    }
    const double excess_half = half_ - optimum_, excess = last_ - optimum_;
    const double wanted = target_ - optimum_;
    if (!(excess > 0 && excess_half > excess && wanted > 0)) {
      return;
    }
    const double rate = std::log(excess_half / excess) /
                        static_cast<double>(last_step_ - half_step_);
    const double more = std::log(excess / wanted) / rate;
    if (std::isfinite(more) && more < 1e15) {
      run_.steps_needed = last_step_ + static_cast<int64_t>(std::ceil(more));
      run_.steps_needed_estimated = true;
    }
  }

 private:
  const Plan& plan_;
  double target_, optimum_;
  int64_t every_, batches_;
  Run& run_;
  double half_ = 0, last_ = 0;
  int64_t half_step_ = 0, last_step_ = 0;
  bool diverged_ = false;
};

// The x86-64 baseline has no FMA: the Gram product, most of a forecast's
// time, is also compiled for AVX2 + FMA and picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define NORMOPT_VECTOR_CLONES \
  __attribute__((target_clones("arch=haswell", "default")))
#else
#define NORMOPT_VECTOR_CLONES
#endif

// out = G w - c, as a sum of G's rows (G is symmetric, p × p), four rows at
// a time so `out` is read and written once per four: each term an axpy the
// compiler vectorizes.
NORMOPT_VECTOR_CLONES
void gram_times(
    const double* g, const double* w, const double* c, double* out, int64_t p) {
  for (int64_t a = 0; a < p; ++a) {
    out[a] = -c[a];
  }
  int64_t b = 0;
  for (; b + 4 <= p; b += 4) {
    const double* r0 = g + b * p;
    const double* r1 = r0 + p;
    const double* r2 = r1 + p;
    const double* r3 = r2 + p;
    const double w0 = w[b], w1 = w[b + 1], w2 = w[b + 2], w3 = w[b + 3];
    for (int64_t a = 0; a < p; ++a) {
      out[a] += r0[a] * w0 + r1[a] * w1 + r2[a] * w2 + r3[a] * w3;
    }
  }
  for (; b < p; ++b) {
    const double* row = g + b * p;
    const double wb = w[b];
    for (int64_t a = 0; a < p; ++a) {
      out[a] += row[a] * wb;
    }
  }
}

// The affine model's parameters and the quadratic's pieces, flat: theta is
// W (k rows of p) then b (k), the gradient alike.
class AffineQuadratic {
 public:
  AffineQuadratic(const Problem& problem, const AffineStart& start)
      : pr_(problem),
        p_(problem.features),
        k_(problem.targets),
        bias_(start.bias.defined()),
        gram_(problem.gram.contiguous()),
        cross_t_(problem.cross.t().contiguous()),
        w_opt_t_(problem.w_opt.t().contiguous()),
        theta_(static_cast<size_t>(k_ * p_ + (bias_ ? k_ : 0))),
        gw_(static_cast<size_t>(p_)),
        loss_(static_cast<size_t>(k_)),
        no_bias_(static_cast<size_t>(k_)) {
    if (problem.raw_x.defined()) {
      // Batch sums about (x_ref, y_ref) in loss units: d / x_scale, and the
      // reference itself at dx = (x_ref - x_shift) / x_scale (dy alike).
      inv_x_ = std::vector<double>(static_cast<size_t>(p_));
      dx_ = inv_x_, a_ = inv_x_, u_ = inv_x_, c_ = inv_x_;
      inv_y_ = std::vector<double>(static_cast<size_t>(k_));
      dy_ = inv_y_;
      for (int64_t i = 0; i < p_; ++i) {
        const double scale = ptr(problem.x_scale)[i];
        inv_x_[i] = 1 / scale;
        dx_[i] = (ptr(problem.raw_mean)[i] - ptr(problem.x_shift)[i]) / scale;
      }
      for (int64_t j = 0; j < k_; ++j) {
        const double scale = ptr(problem.y_scale)[j];
        inv_y_[j] = 1 / scale;
        dy_[j] =
            (ptr(problem.target_mean)[j] - ptr(problem.y_shift)[j]) / scale;
      }
    }
    const auto w = start.weight.to(at::kDouble).contiguous();
    std::memcpy(theta_.data(), ptr(w), sizeof(double) * k_ * p_);
    if (bias_) {
      const auto b = start.bias.to(at::kDouble).contiguous();
      std::memcpy(theta_.data() + k_ * p_, ptr(b), sizeof(double) * k_);
    }
  }

  std::vector<double>& theta() {
    return theta_;
  }
  int64_t size() const {
    return static_cast<int64_t>(theta_.size());
  }

  // The full-batch MSE in original units; with `grad`, its gradient in
  // loss units too.
  double mse(double* grad) {
    const double* g = gram_p_;
    const double* mz = mean_z_;
    for (int64_t j = 0; j < k_; ++j) {
      const double* w = theta_.data() + j * p_;
      const double* c = cross_t_p_ + j * p_;
      const double* wo = w_opt_t_p_ + j * p_;
      double e = (bias_ ? theta_[k_ * p_ + j] : 0) - mean_t_[j];
      gram_times(g, w, c, gw_.data(), p_);
      double excess = 0;
      for (int64_t a = 0; a < p_; ++a) {
        excess += gw_[a] * (w[a] - wo[a]);
        e += mz[a] * w[a];
      }
      loss_[j] = mse_opt_[j] + std::max(excess, 0.0) + e * e;
      if (grad != nullptr) {
        const double scale = 2.0 / static_cast<double>(k_);
        for (int64_t a = 0; a < p_; ++a) {
          grad[j * p_ + a] = scale * (gw_[a] + e * mz[a]);
        }
        if (bias_) {
          grad[k_ * p_ + j] = scale * e;
        }
      }
    }
    // Problem::original_mse's arithmetic, on pointers taken once.
    double sum = 0;
    for (int64_t j = 0; j < k_; ++j) {
      sum += loss_[j] * unit_[j] * unit_[j];
    }
    return sum / static_cast<double>(k_);
  }

  // The gradient of the loss on rows order[start .. start + len) of z and t
  // (a minibatch; `order` holds every row): the fused steps' gradient, in
  // float64.
  void batch_gradient(const int64_t* order,
                      int64_t start,
                      int64_t len,
                      double* grad) {
    const double* w = theta_.data();
    ops::affine_mse_gradient<double>(ptr(pr_.z),
                                     ptr(pr_.t),
                                     pr_.rows,
                                     order,
                                     start,
                                     len,
                                     p_,
                                     k_,
                                     w,
                                     bias_ ? w + k_ * p_ : nullptr,
                                     grad,
                                     bias_ ? grad + k_ * p_ : no_bias_.data());
  }

  // The same gradient from batch b's sums (batch_moments.h): with
  // x~ = (x - x_ref) / x_scale and y~ alike, each residual is
  // r = W x~ - y~ + beta, beta = W dx + b - dy, so that
  //   dL/dW_j = 2/(n k) (Σx~x~ᵀ W_j - Σx~y~_j + beta_j Σx~ + dx Σr_j),
  //   dL/db_j = 2/(n k) Σr_j,  Σr_j = W_j·Σx~ - Σy~_j + n beta_j.
  void sums_gradient(const EpochMoments& m, int64_t b, double* grad) {
    const double n = m.rows(b);
    const double* sd = m.sum_d(b);
    const double* se = m.sum_e(b);
    const double* sdd = m.sum_dd(b);
    const double* sde = m.sum_de(b);
    const double scale = 2.0 / (n * static_cast<double>(k_));
    for (int64_t i = 0; i < p_; ++i) {
      a_[i] = sd[i] * inv_x_[i];
    }
    for (int64_t j = 0; j < k_; ++j) {
      const double* w = theta_.data() + j * p_;
      double beta = (bias_ ? theta_[k_ * p_ + j] : 0) - dy_[j];
      double wa = 0;
      for (int64_t i = 0; i < p_; ++i) {
        u_[i] = w[i] * inv_x_[i];
        beta += w[i] * dx_[i];
        wa += w[i] * a_[i];
        c_[i] = sde[i * k_ + j] * inv_y_[j];
      }
      const double sum_r = wa - se[j] * inv_y_[j] + n * beta;
      gram_times(sdd, u_.data(), c_.data(), gw_.data(), p_);
      for (int64_t i = 0; i < p_; ++i) {
        grad[j * p_ + i] =
            scale * (gw_[i] * inv_x_[i] + beta * a_[i] + dx_[i] * sum_r);
      }
      if (bias_) {
        grad[k_ * p_ + j] = scale * sum_r;
      }
    }
  }

 private:
  const Problem& pr_;
  int64_t p_, k_;
  bool bias_;
  at::Tensor gram_, cross_t_, w_opt_t_;
  std::vector<double> theta_, gw_, loss_;
  std::vector<double> no_bias_;  // the bias gradient of a model without one
  // The problem's float64 data, read every step (a data_ptr() call each
  // time costs more than a small model's arithmetic).
  const double* gram_p_ = gram_.data_ptr<double>();
  const double* cross_t_p_ = cross_t_.data_ptr<double>();
  const double* w_opt_t_p_ = w_opt_t_.data_ptr<double>();
  const double* mean_z_ = pr_.mean_z.data_ptr<double>();
  const double* mean_t_ = pr_.mean_t.data_ptr<double>();
  const double* mse_opt_ = pr_.mse_opt.data_ptr<double>();
  const double* unit_ = pr_.unit.data_ptr<double>();
  // For sums_gradient: 1 / x_scale, dx, 1 / y_scale, dy, and scratch.
  std::vector<double> inv_x_, dx_, inv_y_, dy_, a_, u_, c_;
};

std::vector<double> affine_lrs(const Problem& problem,
                               const AffineStart& start,
                               int64_t size) {
  std::vector<double> lrs(static_cast<size_t>(size), start.lr_weight);
  for (int64_t i = problem.features * problem.targets; i < size; ++i) {
    lrs[static_cast<size_t>(i)] = start.lr_bias;
  }
  return lrs;
}

void full_batch(AffineQuadratic& q, Stepper& stepper, Recorder& rec) {
  std::vector<double> grad(static_cast<size_t>(q.size()));
  if (!rec.after(0, q.mse(grad.data()))) {
    return;
  }
  for (int64_t step = 1;; ++step) {
    stepper.step(q.theta().data(), grad.data());
    if (!rec.after(step, q.mse(grad.data())) || rec.done(step)) {
      return;
    }
  }
}

void minibatches(const Problem& problem,
                 const Plan& plan,
                 AffineQuadratic& q,
                 Stepper& stepper,
                 Recorder& rec) {
  const int64_t n = problem.rows;
  const int64_t batch = batch_rows(n, plan.batch_size);
  const int64_t batches = batches_per_epoch(n, plan.batch_size);
  // Without z and t, each batch's gradient comes from its sums over the
  // raw rows, taken once per epoch order (and kept for other replays).
  const bool sums = !problem.z.defined();
  const BatchRows source{problem.raw_x,
                         problem.raw_y,
                         problem.raw_mean,
                         problem.target_mean,
                         batch,
                         plan.shuffle,
                         plan.seed};
  const auto in_order = sums ? at::Tensor() : at::arange(n, at::kLong);
  std::vector<double> grad(static_cast<size_t>(q.size()));
  if (!rec.after(0, q.mse(nullptr))) {
    return;
  }
  // Beyond the plan (the look-ahead for steps_needed) the plan's epochs are
  // replayed again: their orders and sums are at hand, and a longer run's
  // would be as random.
  const int64_t planned =
      std::max<int64_t>(1, (plan.steps + batches - 1) / batches);
  int64_t step = 0;
  for (int64_t epoch = 1;; ++epoch) {
    const int64_t replayed = (epoch - 1) % planned + 1;
    std::shared_ptr<const EpochMoments> moments;
    at::Tensor order;
    if (sums) {
      moments = epoch_moments(source, replayed);
    } else {
      order = plan.shuffle ? epoch_order(plan.seed, replayed, n) : in_order;
    }
    const int64_t* rows = sums ? nullptr : order.data_ptr<int64_t>();
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t start = b * batch;
      if (sums) {
        q.sums_gradient(*moments, b, grad.data());
      } else {
        q.batch_gradient(rows, start, std::min(batch, n - start), grad.data());
      }
      stepper.step(q.theta().data(), grad.data());
      ++step;
      if (b + 1 == batches || step == plan.steps || step == plan.horizon) {
        if (!rec.after(step, q.mse(nullptr)) || rec.done(step)) {
          return;
        }
      }
    }
  }
}

}  // namespace

Stepper::Stepper(const optim::StepDescription& step, std::vector<double> lrs)
    : d_(step), lrs_(std::move(lrs)) {
  const size_t n = lrs_.size();
  m_.assign(n, 0.0);
  if (d_.rule == optim::StepRule::kAdaptive) {
    v_.assign(n, 0.0);
    if (d_.amsgrad) {
      vmax_.assign(n, 0.0);
    }
  }
}

void Stepper::step(double* theta, double* grad) {
  ++t_;
  const size_t n = lrs_.size();
  const double* lrs = lrs_.data();
  // Without weight decay, maximize, momentum or AMSGrad (most runs), the
  // general loops below without their branches: the same arithmetic.
  const bool plain = !d_.maximize && d_.weight_decay == 0 && !d_.amsgrad &&
                     d_.decoupled_weight_decay == 0;
  if (d_.rule == optim::StepRule::kGradientDescent) {
    if (plain && d_.momentum == 0) {
      for (size_t i = 0; i < n; ++i) {
        theta[i] -= lrs[i] * grad[i];
      }
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      double g = d_.maximize ? -grad[i] : grad[i];
      g += d_.weight_decay * theta[i];
      if (d_.momentum != 0) {
        m_[i] = t_ == 1 ? g : d_.momentum * m_[i] + (1 - d_.dampening) * g;
        g = d_.nesterov ? g + d_.momentum * m_[i] : m_[i];
      }
      theta[i] -= lrs_[i] * g;
    }
    return;
  }
  // beta^t as running products: a pow() each would cost more than the
  // arithmetic of a small model's step.
  beta1_t_ *= d_.beta1;
  beta2_t_ *= d_.beta2;
  const double bc1 = 1 - beta1_t_;
  const double bc2 = 1 - beta2_t_;
  // The bias corrections as factors taken once per step: one square root
  // and one division per element (these dominate a small model's step).
  const double sqrt_bc2 = std::sqrt(bc2);
  const double inv_bc1 = 1 / bc1, inv_sqrt_bc2 = 1 / sqrt_bc2;
  const double keras = sqrt_bc2 * inv_bc1;
  if (plain) {
    const double beta1 = d_.beta1, beta2 = d_.beta2, eps = d_.eps;
    double* m = m_.data();
    double* v = v_.data();
    if (d_.keras_epsilon) {
      for (size_t i = 0; i < n; ++i) {
        const double g = grad[i];
        m[i] += (1 - beta1) * (g - m[i]);
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        theta[i] -= lrs[i] * keras * m[i] / (std::sqrt(v[i]) + eps);
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        const double g = grad[i];
        m[i] += (1 - beta1) * (g - m[i]);
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        theta[i] -=
            lrs[i] * inv_bc1 * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const double lr = lrs_[i];
    theta[i] *= 1 - lr * d_.decoupled_weight_decay;
    double g = d_.maximize ? -grad[i] : grad[i];
    g += d_.weight_decay * theta[i];
    m_[i] += (1 - d_.beta1) * (g - m_[i]);
    v_[i] = d_.beta2 * v_[i] + (1 - d_.beta2) * g * g;
    double v = v_[i];
    if (d_.amsgrad) {
      vmax_[i] = std::max(vmax_[i], v);
      v = vmax_[i];
    }
    if (d_.keras_epsilon) {
      theta[i] -= lr * keras * m_[i] / (std::sqrt(v) + d_.eps);
    } else {
      theta[i] -= lr * inv_bc1 * m_[i] / (std::sqrt(v) * inv_sqrt_bc2 + d_.eps);
    }
  }
}

Run forecast_affine(const Problem& problem,
                    const AffineStart& start,
                    const optim::StepDescription& step,
                    const Plan& plan) {
  Run run;
  AffineQuadratic q(problem, start);
  Stepper stepper(step, affine_lrs(problem, start, q.size()));
  const int64_t batches =
      problem.has_rows() ? batches_per_epoch(problem.rows, plan.batch_size) : 1;
  Recorder rec(plan, problem.optimum_mse(), batches, run);
  if (batches > 1) {
    run.method = "minibatch replay (batches of " +
                 std::to_string(batch_rows(problem.rows, plan.batch_size)) +
                 " rows in fit()'s order, float64)";
    minibatches(problem, plan, q, stepper, rec);
  } else {
    run.method = "exact full-batch quadratic (float64)";
    full_batch(q, stepper, rec);
  }
  rec.finish();
  return run;
}

Run forecast_module(const Problem& problem,
                    const ModuleStart& start,
                    const optim::StepDescription& step,
                    const Plan& plan) {
  Run run;
  const int64_t n = problem.rows;
  const int64_t batches = batches_per_epoch(n, plan.batch_size);
  const int64_t batch = batch_rows(n, plan.batch_size);
  const auto& params = start.parameters;
  const auto dtype = params[0].scalar_type();
  const auto device = params[0].device();
  const auto z = problem.z.to(device, dtype);
  const auto t = problem.t.to(device, dtype);

  // The caller's parameters, mode and global RNG come back however this
  // ends.
  std::vector<at::Tensor> saved;
  for (const auto& p : params) {
    saved.push_back(p.detach().clone());
  }
  auto cpu_rng = at::detail::getDefaultCPUGenerator();
  const auto rng_state = cpu_rng.get_state();
  ModeGuard mode(*start.module);
  struct Restore {
    const std::vector<at::Tensor>& params;
    const std::vector<at::Tensor>& saved;
    at::Generator& rng;
    const at::Tensor& state;
    ~Restore() {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        params[i].copy_(saved[i]);
      }
      rng.set_state(state);
    }
  } restore{params, saved, cpu_rng, rng_state};

  std::vector<double> theta, lrs;
  std::vector<int64_t> offsets{0};
  for (size_t i = 0; i < params.size(); ++i) {
    const auto flat = params[i].detach().to(at::kCPU, at::kDouble).reshape(-1);
    theta.insert(theta.end(), ptr(flat), ptr(flat) + flat.numel());
    lrs.insert(lrs.end(), static_cast<size_t>(flat.numel()), start.lrs[i]);
    offsets.push_back(static_cast<int64_t>(theta.size()));
  }
  Stepper stepper(step, lrs);
  std::vector<double> grad(theta.size());
  const auto evaluate = [&]() {
    at::NoGradGuard no_grad;
    start.module->eval();
    const auto d = start.forward(z).to(at::kDouble) - t.to(at::kDouble);
    // Original units: each column's squared error times its unit².
    return (d.square().mean(0) * problem.unit.to(d.device()).square())
        .mean()
        .item<double>();
  };
  Recorder rec(plan, problem.optimum_mse(), batches, run);
  if (!rec.after(0, evaluate())) {
    rec.finish();
    return run;
  }
  auto generator = at::make_generator<at::CPUGeneratorImpl>(plan.seed);
  at::Tensor full_rows;
  if (batches == 1 && n > kModuleReplayRows) {
    full_rows = at::randperm(n, generator, at::kLong)
                    .narrow(0, 0, kModuleReplayRows)
                    .to(device);
  }
  run.method =
      batches > 1 ? "replay of the model on a copy (batches of " +
                        std::to_string(batch) + " rows in fit()'s order)"
      : full_rows.defined()
          ? "replay of the model on a copy (full batch of 1,024 sampled rows)"
          : "replay of the model on a copy (full batch)";
  at::AutoGradMode enable_grad(true);
  const int64_t horizon = plan.steps;  // a replay is as dear as the run
  int64_t done = 0;
  for (int64_t epoch = 1; done < horizon; ++epoch) {
    at::Tensor order;
    if (batches > 1 && plan.shuffle) {
      order = epoch_order(plan.seed, epoch, n).to(device);
    }
    for (int64_t b = 0; b < batches && done < horizon; ++b) {
      at::Tensor zb = z, tb = t;
      if (full_rows.defined()) {
        zb = z.index_select(0, full_rows);
        tb = t.index_select(0, full_rows);
      } else if (batches > 1) {
        const int64_t s = b * batch, len = std::min(batch, n - s);
        zb = order.defined() ? z.index_select(0, order.narrow(0, s, len))
                             : z.narrow(0, s, len);
        tb = order.defined() ? t.index_select(0, order.narrow(0, s, len))
                             : t.narrow(0, s, len);
      }
      start.module->train();
      const auto loss = at::mse_loss(start.forward(zb), tb);
      const auto grads = torch::autograd::grad({loss},
                                               params,
                                               {},
                                               /*retain_graph=*/false,
                                               /*create_graph=*/false,
                                               /*allow_unused=*/true);
      for (size_t i = 0; i < params.size(); ++i) {
        const auto g =
            grads[i].defined()
                ? grads[i].to(at::kCPU, at::kDouble).reshape(-1)
                : at::zeros({offsets[i + 1] - offsets[i]}, at::kDouble);
        std::memcpy(grad.data() + offsets[i],
                    ptr(g),
                    sizeof(double) * static_cast<size_t>(g.numel()));
      }
      stepper.step(theta.data(), grad.data());
      {
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < params.size(); ++i) {
          params[i].copy_(at::from_blob(
              theta.data() + offsets[i], params[i].sizes(), at::kDouble));
        }
      }
      ++done;
      const bool record = b + 1 == batches || done == plan.steps;
      const bool cheap = epoch % record_every(plan.steps / batches + 1) == 0;
      if (record && (cheap || done == plan.steps)) {
        if (!rec.after(done, evaluate())) {
          rec.finish();
          return run;
        }
      }
    }
  }
  rec.finish();
  return run;
}

Run run_of(const at::Tensor& replayed,
           const Plan& plan,
           double optimum_mse,
           std::string method) {
  TORCH_CHECK(
      replayed.dim() == 2 && replayed.size(1) == 2 && replayed.size(0) >= 1,
      "diagnose: a replayed run must be (m, 2) rows of (step, MSE), "
      "got shape ",
      replayed.sizes());
  const auto rows = replayed.to(at::kCPU, at::kDouble).contiguous();
  const double* r = rows.data_ptr<double>();
  TORCH_CHECK(
      r[0] == 0 && r[2 * (rows.size(0) - 1)] == static_cast<double>(plan.steps),
      "diagnose: a replayed run must start at step 0 and end at the "
      "planned step ",
      plan.steps);
  Run run;
  Plan q = plan;
  q.horizon = plan.steps;
  Recorder rec(q, optimum_mse, 1, run);
  for (int64_t i = 0; i < rows.size(0); ++i) {
    if (!rec.after(static_cast<int64_t>(r[2 * i]), r[2 * i + 1])) {
      break;
    }
  }
  rec.finish();
  run.method = std::move(method);
  return run;
}

Verdict verdict_of(const Run& run, double optimum_mse) {
  if (!run.finite) {
    return Verdict::kDiverges;
  }
  const double ratio = run.final_mse / optimum_mse;
  if (ratio <= std::sqrt(kConvergedRatio * kStalledRatio)) {
    return Verdict::kConverges;
  }
  return run.final_mse > run.initial_mse ? Verdict::kDiverges
                                         : Verdict::kStalls;
}

}  // namespace normopt::train::detail
