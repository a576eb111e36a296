#include "problem.h"

#include "../checks.h"
#include "../training_rows.h"
#include "batch_moments.h"

#include <normopt/ops/moments.h>
#include <normopt/train/closed_form.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

namespace normopt::train::detail {
namespace {

constexpr double kSingular = 1e-12;

at::Tensor f64(const at::Tensor& x) {
  return x.to(at::kCPU, at::kDouble).contiguous();
}

// Population means and standard deviations per column.
std::pair<at::Tensor, at::Tensor> mean_sd(const at::Tensor& x) {
  auto [n, mean, m2] = ops::moments(x, {0});
  return {mean, (m2 / n.to(at::kDouble)).sqrt()};
}

// Whether columns look standardized: means near 0, deviations near 1 (or a
// constant column's 0).
bool looks_standardized(const at::Tensor& mean, const at::Tensor& var) {
  const auto sd = var.sqrt();
  return mean.abs().max().item<double>() < 0.5 &&
         ((sd - 1).abs() < 0.5).logical_or(sd == 0).all().item<bool>();
}

// The minimum-norm solution of gram w = cross on the correlation scale
// (eigenvalues below 1e-12 of the largest count as 0).
at::Tensor solve_gram(const at::Tensor& gram, const at::Tensor& cross) {
  const auto d = gram.diagonal();
  const auto s = at::where(d > 0, d.rsqrt(), at::ones_like(d));
  const auto corr = gram * s.unsqueeze(1) * s.unsqueeze(0);
  auto [values, vectors] = at::linalg_eigh(corr);
  const double top = values.max().item<double>();
  const auto inv = at::where(
      values > kSingular * top, values.reciprocal(), at::zeros_like(values));
  const auto rhs = cross * s.unsqueeze(1);
  return s.unsqueeze(1) *
         at::matmul(vectors * inv.unsqueeze(0), at::matmul(vectors.t(), rhs));
}

void finish_optimum(Problem& p, const at::Tensor& mse_from_rows) {
  p.w_opt = solve_gram(p.gram, p.cross);
  p.b_opt = p.mean_t - at::matmul(p.mean_z, p.w_opt);
  if (mse_from_rows.defined()) {
    p.mse_opt = mse_from_rows;
  } else {
    p.mse_opt = (p.var_t - (p.cross * p.w_opt).sum(0)).clamp_min(0);
  }
  p.features_normalized =
      p.features == 0 || looks_standardized(p.mean_z, p.gram.diagonal());
  p.targets_standardized = looks_standardized(p.mean_t, p.var_t);
}

// Chan's merge of centered co-moments, for the stream.
struct Moments {
  double n = 0;
  at::Tensor mz, mt, szz, szt, stt;  // means and co-moment sums
  at::Tensor raw_n, raw_mean, raw_m2, y_n, y_mean, y_m2;

  void add(const at::Tensor& z, const at::Tensor& t) {
    const double m = static_cast<double>(z.size(0));
    const auto bz = z.mean(0), bt = t.mean(0);
    const auto zc = z - bz, tc = t - bt;
    const auto gzz = zc.t().mm(zc), gzt = zc.t().mm(tc),
               gtt = tc.square().sum(0);
    if (n == 0) {
      n = m, mz = bz, mt = bt, szz = gzz, szt = gzt, stt = gtt;
      return;
    }
    const double total = n + m, f = n * m / total;
    const auto dz = bz - mz, dt = bt - mt;
    szz = szz + gzz + f * dz.unsqueeze(1) * dz.unsqueeze(0);
    szt = szt + gzt + f * dz.unsqueeze(1) * dt.unsqueeze(0);
    stt = stt + gtt + f * dt.square();
    mz = mz + dz * (m / total);
    mt = mt + dt * (m / total);
    n = total;
  }
  void add_raw(const at::Tensor& x, const at::Tensor& y) {
    auto [n1, m1, s1] = ops::moments(x, {0});
    auto [n2, m2, s2] = ops::moments(y, {0});
    if (!raw_n.defined()) {
      raw_n = n1, raw_mean = m1, raw_m2 = s1, y_n = n2, y_mean = m2, y_m2 = s2;
      return;
    }
    std::tie(raw_n, raw_mean, raw_m2) =
        ops::merge_moments(raw_n, raw_mean, raw_m2, n1, m1, s1);
    std::tie(y_n, y_mean, y_m2) =
        ops::merge_moments(y_n, y_mean, y_m2, n2, m2, s2);
  }
};

// Rows per float64 block when the rows are not kept.
constexpr int64_t kBlockRows = 8192;
// Below this share of the target variance the optimum's MSE is summed from
// residuals.
constexpr double kNearExact = 1e-6;

// The raw table's moments from float64 blocks. The last table's are kept
// (the runs of a comparison forecast one table): its tensors unchanged, they
// are copied, not summed again.
Moments raw_moments(const data::Table& train) {
  struct Last {
    TensorIdentity x, y;
    Moments moments;
  };
  static std::mutex mutex;
  static std::optional<Last> last;
  const auto copy = [](const Moments& m) {
    Moments c;
    c.n = m.n;
    c.mz = m.mz.clone(), c.mt = m.mt.clone(), c.szz = m.szz.clone();
    c.szt = m.szt.clone(), c.stt = m.stt.clone();
    return c;
  };
  const auto& x = train.features;
  const auto& y = train.targets;
  const bool keepable = !x.is_inference() && !y.is_inference();
  if (keepable) {
    std::lock_guard<std::mutex> lock(mutex);
    if (last && last->x.same(x) && last->y.same(y)) {
      return copy(last->moments);
    }
  }
  Moments raw;
  const int64_t n = x.size(0);
  for (int64_t start = 0; start < n; start += kBlockRows) {
    const int64_t len = std::min(kBlockRows, n - start);
    raw.add(f64(x.narrow(0, start, len)),
            f64(as_matrix(y).narrow(0, start, len)));
  }
  if (keepable) {
    std::lock_guard<std::mutex> lock(mutex);
    last = Last{TensorIdentity(x), TensorIdentity(y), copy(raw)};
  }
  return raw;
}

// The problem's moments and optimum (without residuals: from the moments)
// from merged blocks.
void set_moments(Problem& p, const Moments& m) {
  p.rows = static_cast<int64_t>(m.n);
  p.features = m.mz.size(0);
  p.targets = m.mt.size(0);
  p.mean_z = m.mz, p.mean_t = m.mt;
  p.gram = m.szz / m.n, p.cross = m.szt / m.n, p.var_t = m.stt / m.n;
  finish_optimum(p, at::Tensor());
}

void set_raw(Problem& p, const Moments& m) {
  p.raw_mean = m.raw_mean;
  p.raw_sd = (m.raw_m2 / m.raw_n.to(at::kDouble)).sqrt();
  p.target_mean = m.y_mean;
  p.target_sd = (m.y_m2 / m.y_n.to(at::kDouble)).sqrt();
}

// The model's input and target scalers, or side copies with the statistics
// fit() would compute where the model's are missing (`adapt` and `fit`
// compute them); the model is never changed.
struct Scalers {
  nn::Normalization normalization;
  nn::TargetStandardizer target;
};

template <typename Adapt, typename Fit>
Scalers scalers_of(nn::StandardizedRegressor& model, Adapt adapt, Fit fit) {
  Scalers s{model->normalization, model->target};
  if (!s.normalization->is_adapted()) {
    s.normalization = nn::Normalization(model->normalization->options);
    adapt(s.normalization);
  }
  if (!s.target->is_fitted()) {
    s.target = nn::TargetStandardizer(model->target->options);
    fit(s.target);
  }
  return s;
}

// z and t as the loss sees them, float64.
std::pair<at::Tensor, at::Tensor> loss_units(Scalers& s,
                                             const at::Tensor& x,
                                             const at::Tensor& y) {
  const auto rows = as_matrix(y);
  auto z = at::empty({x.size(0), x.size(1)}, at::kDouble);
  auto t = at::empty({rows.size(0), rows.size(1)}, at::kDouble);
  normalize_into(*s.normalization, x.cpu(), z);
  standardize_targets_into(*s.target, rows.cpu(), t);
  return {z, t};
}

// The optimum's MSE from the moments loses about 1e-16 / (its share of the
// variance) of its digits: when that share is under 1e-6 (a near-exact
// fit), the residuals are summed block by block instead.
void sum_residuals_if_near_exact(Problem& p,
                                 Scalers& scalers,
                                 const data::Table& train) {
  if (!(p.mse_opt < kNearExact * p.var_t).any().item<bool>()) {
    return;
  }
  at::Tensor sum;
  for (int64_t start = 0; start < p.rows; start += kBlockRows) {
    const int64_t len = std::min(kBlockRows, p.rows - start);
    auto [z, t] = loss_units(scalers,
                             train.features.narrow(0, start, len),
                             as_matrix(train.targets).narrow(0, start, len));
    auto r = (t - at::matmul(z, p.w_opt) - p.b_opt).square().sum(0);
    sum = sum.defined() ? sum + r : r;
  }
  p.mse_opt = (sum / static_cast<double>(p.rows)).contiguous();
}

at::Tensor unit_of(const Scalers& s, int64_t targets) {
  auto unit = f64(s.target->scale).reshape(-1);
  return unit.numel() == 1 && targets > 1 ? unit.expand({targets}).contiguous()
                                          : unit;
}

const char* scaling_name(nn::TargetScaling method) {
  switch (method) {
    case nn::TargetScaling::kZScore:
      return "TargetScaling::kZScore";
    case nn::TargetScaling::kMinMax:
      return "TargetScaling::kMinMax";
    case nn::TargetScaling::kNone:
      return "TargetScaling::kNone, raw units";
  }
  return "?";
}

}  // namespace

double Problem::original_mse(const double* per_column) const {
  const double* u = unit.data_ptr<double>();
  double sum = 0;
  for (int64_t j = 0; j < targets; ++j) {
    sum += per_column[j] * u[j] * u[j];
  }
  return sum / static_cast<double>(targets);
}

double Problem::optimum_mse() const {
  return original_mse(mse_opt.data_ptr<double>());
}

bool Problem::optimum_exact() const {
  const auto mean_square = (var_t + mean_t.square()).contiguous();
  return optimum_mse() <=
         kExactFitTolerance * original_mse(mean_square.data_ptr<double>());
}

Problem Problem::standardized() const {
  Problem s = *this;
  const auto sz = at::where(
      gram.diagonal() > 0, gram.diagonal().sqrt(), at::ones_like(mean_z));
  const auto st = at::where(var_t > 0, var_t.sqrt(), at::ones_like(mean_t));
  if (z.defined()) {
    s.z = ((z - mean_z) / sz).contiguous();
    s.t = ((t - mean_t) / st).contiguous();
  }
  if (raw_x.defined()) {
    // (z - mean_z) / sz = (x - (x_shift + mean_z x_scale)) / (x_scale sz).
    s.x_shift = (x_shift + mean_z * x_scale).contiguous();
    s.x_scale = (x_scale * sz).contiguous();
    s.y_shift = (y_shift + mean_t * y_scale).contiguous();
    s.y_scale = (y_scale * st).contiguous();
  }
  s.mean_z = at::zeros_like(mean_z);
  s.mean_t = at::zeros_like(mean_t);
  s.gram = gram / sz.unsqueeze(1) / sz.unsqueeze(0);
  s.cross = cross / sz.unsqueeze(1) / st.unsqueeze(0);
  s.var_t = var_t / st.square();
  s.unit = (unit * st).contiguous();
  s.w_opt = w_opt * sz.unsqueeze(1) / st.unsqueeze(0);
  s.b_opt = at::zeros_like(b_opt);
  s.mse_opt = (mse_opt / st.square()).contiguous();
  s.features_normalized = true;
  s.targets_standardized = true;
  s.target_scaling = scaling_name(nn::TargetScaling::kZScore);
  return s;
}

void compute_moments(Problem& p) {
  p.rows = p.z.size(0);
  p.features = p.z.size(1);
  p.targets = p.t.size(1);
  const double n = static_cast<double>(p.rows);
  p.mean_z = p.z.mean(0);
  p.mean_t = p.t.mean(0);
  const auto tc = p.t - p.mean_t;
  // Features the model already centers (|mean| at most their standard
  // deviation, as after a Normalization) need no centered copy: the
  // correction mean meanᵀ loses no more than a bit. Raw features with an
  // offset are centered first.
  const auto raw_gram = p.z.t().mm(p.z) / n;
  const auto var_z = raw_gram.diagonal() - p.mean_z.square();
  const bool centered =
      (p.mean_z.square() <= var_z.clamp_min(0)).all().item<bool>();
  const auto zc = centered ? p.z : p.z - p.mean_z;
  p.gram = centered ? raw_gram - p.mean_z.unsqueeze(1) * p.mean_z.unsqueeze(0)
                    : zc.t().mm(zc) / n;
  p.cross = zc.t().mm(tc) / n;
  p.var_t = tc.square().mean(0);
  const auto w = solve_gram(p.gram, p.cross);
  // Residuals at the optimum; with uncentered z, its mean moves into them.
  const auto offset =
      centered ? at::matmul(p.mean_z, w) : at::zeros_like(p.mean_t);
  finish_optimum(p, (tc - zc.mm(w) + offset).square().mean(0).contiguous());
}

Problem problem_of(const at::Tensor& x, const at::Tensor& y) {
  // Loss units are the data's own: one unit per target column.
  const int64_t k = y.dim() == 1 ? 1 : y.size(1);
  return problem_of(x,
                    y,
                    at::ones({k}, at::kDouble),
                    data::Table{x, y, {}, ""},
                    std::nullopt);
}

Problem problem_of(nn::StandardizedRegressor& model,
                   const data::Table& train,
                   KeepRows keep) {
  const bool by_column = per_column(*model->normalization);
  const bool zscore =
      model->target->options.method() == nn::TargetScaling::kZScore;
  // One pass of float64 blocks gives the raw data's centered co-moments
  // (Chan merge): the raw statistics, any missing scaler statistics (the
  // moments adapt() and fit() compute) and, as the model's scaling is
  // affine per column, the moments of what the loss sees.
  const Moments raw = raw_moments(train);
  const auto count = at::scalar_tensor(static_cast<int64_t>(raw.n), at::kLong);
  auto scalers = scalers_of(
      model,
      [&](nn::Normalization& norm) {
        by_column ? norm->merge(count, raw.mz, raw.szz.diagonal())
                  : norm->adapt(f64(train.features));
      },
      [&](nn::TargetStandardizer& t) {
        zscore ? t->fit_moments(count, raw.mt, raw.stt)
               : t->fit(f64(as_matrix(train.targets)));
      });
  Problem p;
  p.raw_mean = raw.mz;
  p.raw_sd = (raw.szz.diagonal() / raw.n).sqrt();
  p.target_mean = raw.mt;
  p.target_sd = (raw.stt / raw.n).sqrt();
  p.unit = unit_of(scalers, raw.mt.size(0));
  if (!by_column) {
    std::tie(p.z, p.t) = loss_units(scalers, train.features, train.targets);
    compute_moments(p);
  } else {
    // z = (x - mean) / scale and t = (y - loc) / unit, column by column.
    const auto mu = f64(scalers.normalization->mean).reshape(-1);
    const auto scale = f64(scalers.normalization->scale()).reshape(-1);
    const auto a = scale.reciprocal();
    const auto loc = f64(scalers.target->loc).reshape(-1);
    const auto b = p.unit.reciprocal();
    Moments seen;
    seen.n = raw.n;
    seen.mz = (raw.mz - mu) * a;
    seen.mt = (raw.mt - loc) * b;
    seen.szz = raw.szz * a.unsqueeze(1) * a.unsqueeze(0);
    seen.szt = raw.szt * a.unsqueeze(1) * b.unsqueeze(0);
    seen.stt = raw.stt * b.square();
    set_moments(p, seen);
    sum_residuals_if_near_exact(p, scalers, train);
    if (keep == KeepRows::kRaw) {
      p.raw_x = train.features;
      p.raw_y = train.targets;
      p.x_shift = mu.expand({p.features}).contiguous();
      p.x_scale = scale.expand({p.features}).contiguous();
      p.y_shift = loc.expand({p.targets}).contiguous();
      p.y_scale = p.unit.expand({p.targets}).contiguous();
    } else if (keep == KeepRows::kLossUnits) {
      std::tie(p.z, p.t) = loss_units(scalers, train.features, train.targets);
    }
  }
  p.feature_names = train.feature_names;
  p.target_scaling = scaling_name(model->target->options.method());
  return p;
}

Problem problem_of(nn::StandardizedRegressor& model, data::TableStream& train) {
  auto scalers = scalers_of(
      model,
      [&](nn::Normalization& n) { n->adapt(train); },
      [&](nn::TargetStandardizer& t) { t->fit(train); });
  Moments m;
  train.rewind();
  std::vector<std::string> names;
  while (auto part = train.next()) {
    check_table(model, *part, "diagnose", "training");
    auto [z, t] = loss_units(scalers, part->features, part->targets);
    m.add(z, t);
    m.add_raw(f64(part->features), f64(as_matrix(part->targets)));
    names = part->feature_names;
  }
  TORCH_CHECK(m.n > 0,
              "diagnose: the training stream has no rows; there is nothing "
              "to train on");
  Problem p;
  set_moments(p, m);
  p.unit = unit_of(scalers, p.targets);
  set_raw(p, m);
  p.feature_names = names;
  p.target_scaling = scaling_name(model->target->options.method());
  return p;
}

Problem problem_of(const at::Tensor& z,
                   const at::Tensor& t,
                   const at::Tensor& unit,
                   const data::Table& raw,
                   std::optional<nn::TargetScaling> target_scaling) {
  Problem p;
  p.z = f64(z);
  p.t = f64(as_matrix(t));
  p.unit = f64(unit).reshape(-1);
  TORCH_CHECK(p.z.dim() == 2 && p.z.size(0) == p.t.size(0) &&
                  p.unit.numel() == p.t.size(1),
              "diagnose: z (N, p), t (N, k) and unit (k) do not match: ",
              p.z.sizes(),
              ", ",
              p.t.sizes(),
              " and ",
              p.unit.sizes());
  std::tie(p.raw_mean, p.raw_sd) = mean_sd(f64(raw.features));
  std::tie(p.target_mean, p.target_sd) = mean_sd(f64(as_matrix(raw.targets)));
  p.feature_names = raw.feature_names;
  p.target_scaling =
      target_scaling ? scaling_name(*target_scaling) : "raw targets";
  compute_moments(p);
  return p;
}

OptimizerView view_optimizer(const torch::optim::Optimizer& optimizer) {
  OptimizerView view;
  view.step = optim::describe(optimizer);
  std::vector<std::pair<const c10::TensorImpl*, double>> lrs;
  std::vector<double> distinct;
  for (const auto& group : optimizer.param_groups()) {
    double lr = view.step.lr;
    try {
      lr = group.options().get_lr();
    } catch (const c10::Error&) {
      // Options without get_lr(): group 0's lr from describe().
    }
    for (const auto& param : group.params()) {
      lrs.emplace_back(param.unsafeGetTensorImpl(), lr);
    }
    if (std::find(distinct.begin(), distinct.end(), lr) == distinct.end()) {
      distinct.push_back(lr);
    }
  }
  if (distinct.size() > 1) {
    view.groups_note = std::to_string(optimizer.param_groups().size()) +
                       " param groups with different learning rates: the "
                       "forecast uses each parameter's own group's lr and "
                       "group 0's other settings";
  }
  view.lr_of = [lrs = std::move(lrs)](const at::Tensor& param) {
    for (const auto& [impl, lr] : lrs) {
      if (impl == param.unsafeGetTensorImpl()) {
        return lr;
      }
    }
    return std::numeric_limits<double>::quiet_NaN();
  };
  return view;
}

}  // namespace normopt::train::detail
