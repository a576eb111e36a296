#include "training_rows.h"

#include "batches.h"
#include "checks.h"
#include "objective.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace normopt::train::detail {

std::pair<at::Tensor, at::Tensor> BatchBlock::batch_at(int64_t b) const {
  const int64_t start = b * batch;
  const int64_t len = std::min(batch, x.size(0) - start);
  if (order.defined()) {
    const auto picked = order.narrow(0, start, len);
    return {x.index_select(0, picked), y.index_select(0, picked)};
  }
  return {x.narrow(0, start, len), y.narrow(0, start, len)};
}

at::Tensor prepared_inputs(nn::StandardizedRegressor& model,
                           const at::Tensor& features,
                           const at::TensorOptions& options) {
  at::NoGradGuard no_grad;
  return model->normalization->forward(features.to(options));
}

at::Tensor prepared_targets(nn::StandardizedRegressor& model,
                            const at::Tensor& targets,
                            const at::TensorOptions& options) {
  at::NoGradGuard no_grad;
  return model->transform_targets(as_matrix(targets).to(options));
}

namespace {

// out = (x - mean) / scale per column (or by one scalar), as prepared_inputs
// and prepared_targets compute it (ops::standardize after the conversion to
// out's dtype): x converted to Out, standardized in the wider of Out and
// the statistics' dtype, back to Out.
template <typename In, typename Out, typename Stat>
void standardize_rows(const In* x,
                      const Stat* mean,
                      const Stat* scale,
                      int64_t stat_stride,
                      int64_t rows,
                      int64_t cols,
                      Out* out) {
  using C = std::conditional_t<sizeof(Out) >= sizeof(Stat), Out, Stat>;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t s = c * stat_stride;
      const C v = static_cast<Out>(x[r * cols + c]);
      out[r * cols + c] = static_cast<Out>((v - static_cast<C>(mean[s])) /
                                           static_cast<C>(scale[s]));
    }
  }
}

bool floating(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

// standardize_rows when it applies (CPU, 2-D contiguous x and out of one
// shape, float32 or float64 everywhere, statistics of one dtype per column
// or one of each); false otherwise.
bool standardize_into(const at::Tensor& x,
                      const at::Tensor& mean,
                      const at::Tensor& scale,
                      const at::Tensor& out) {
  if (!x.is_cpu() || !out.is_cpu() || !mean.is_cpu() || !scale.is_cpu() ||
      x.dim() != 2 || !x.is_contiguous() || !out.is_contiguous() ||
      out.sizes() != x.sizes() || !floating(x) || !floating(out) ||
      !floating(mean) || scale.scalar_type() != mean.scalar_type()) {
    return false;
  }
  const int64_t cols = x.size(1);
  const int64_t stride = mean.numel() == cols && scale.numel() == cols ? 1
                         : mean.numel() == 1 && scale.numel() == 1     ? 0
                                                                       : -1;
  if (stride < 0) {
    return false;
  }
  const auto m = mean.contiguous(), s = scale.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "standardize_into", [&] {
    using In = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "standardize_into", [&] {
      using Out = scalar_t;
      AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "standardize_into", [&] {
        standardize_rows(x.const_data_ptr<In>(),
                         m.const_data_ptr<scalar_t>(),
                         s.const_data_ptr<scalar_t>(),
                         stride,
                         x.size(0),
                         cols,
                         out.data_ptr<Out>());
      });
    });
  });
  return true;
}

}  // namespace

bool per_column(const nn::NormalizationImpl& normalization) {
  const auto& axis = normalization.options.axis();
  return axis == std::vector<int64_t>{-1} || axis == std::vector<int64_t>{1};
}

void normalize_into(nn::NormalizationImpl& normalization,
                    const at::Tensor& features,
                    const at::Tensor& out) {
  if (per_column(normalization) && !normalization.options.invert() &&
      normalization.is_adapted() &&
      standardize_into(
          features, normalization.mean, normalization.scale(), out)) {
    return;
  }
  at::NoGradGuard no_grad;
  out.copy_(normalization.forward(features.to(out.options())));
}

void standardize_targets_into(const nn::TargetStandardizerImpl& target,
                              const at::Tensor& targets,
                              const at::Tensor& out) {
  const auto y = as_matrix(targets);
  if (target.is_fitted() &&
      standardize_into(y, target.loc, target.scale, out)) {
    return;
  }
  at::NoGradGuard no_grad;
  out.copy_(target.transform(y.to(out.options())));
}

at::TensorOptions data_options_of(const nn::StandardizedRegressor& model) {
  const auto params = model->parameters();
  return at::TensorOptions()
      .dtype(params[0].scalar_type())
      .device(params[0].device());
}

namespace {

class TableRows : public TrainingRows {
 public:
  TableRows(nn::StandardizedRegressor& model,
            const data::Table& train,
            const FitOptions& options)
      : model_(model), options_(options) {
    const auto data_options = data_options_of(model);
    const auto eval_options = data_options.dtype(at::kDouble);
    x_ = prepared_inputs(model, train.features, data_options);
    y_std_ = prepared_targets(model, train.targets, data_options);
    y_std64_ = prepared_targets(model, train.targets, eval_options);
    scale64_ = model->target->scale.to(eval_options);
    rows = x_.size(0);
    batch_ = batch_rows(rows, options.batch_size());
    batches = batches_per_epoch(rows, options.batch_size());
  }

  void for_each_block(int64_t epoch, const BlockFn& fn) override {
    // Epoch e's order is drawn from seed + e; a single full batch is not
    // permuted: its order cannot change the step.
    BatchBlock block{x_, y_std_, at::Tensor(), batch_, batches};
    if (options_.shuffle() && batches > 1) {
      block.order = epoch_order(options_.seed(), epoch, rows).to(x_.device());
    }
    fn(block);
  }

  std::pair<double, double> evaluate() override {
    return detail::evaluate(*model_, x_, y_std64_, scale64_);
  }

 private:
  nn::StandardizedRegressor& model_;
  const FitOptions& options_;
  at::Tensor x_, y_std_, y_std64_, scale64_;
  int64_t batch_ = 0;
};

class StreamRows : public TrainingRows {
 public:
  StreamRows(nn::StandardizedRegressor& model,
             data::TableStream& stream,
             int64_t n_rows,
             const FitOptions& options)
      : model_(model),
        stream_(stream),
        options_(options),
        generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed())) {
    rows = n_rows;
    batch_ = batch_rows(rows, options.batch_size());
    batches = batches_per_epoch(rows, options.batch_size());
    buffer_rows_ = std::max(options.shuffle_buffer(), batch_);
  }

  void for_each_block(int64_t epoch, const BlockFn& fn) override {
    const auto data_options = data_options_of(model_);
    epoch_ = epoch;
    first_draw_ = true;
    held_ = 0;
    stream_.rewind();
    while (auto part = stream_.next()) {
      check_table(model_, *part, "fit", "training");
      const int64_t n = part->size();
      reserve(
          held_ + n, part->features.size(1), targets_of(*part), data_options);
      normalize_into(
          *model_->normalization, part->features, x_.narrow(0, held_, n));
      standardize_targets_into(
          *model_->target, part->targets, y_.narrow(0, held_, n));
      held_ += n;
      if (held_ >= buffer_rows_) {
        flush(false, fn);
      }
    }
    flush(true, fn);
  }

  std::pair<double, double> evaluate() override {
    const auto data_options = data_options_of(model_);
    const auto eval_options = data_options.dtype(at::kDouble);
    const auto scale64 = model_->target->scale.to(eval_options);
    double loss_sum = 0, mse_sum = 0, count = 0;
    stream_.rewind();
    at::Tensor x_part, y_part;  // reused: parts are of one size but the last
    while (auto part = stream_.next()) {
      const int64_t len = part->size();
      if (!x_part.defined() || x_part.size(0) < len) {
        x_part = at::empty({len, part->features.size(1)}, data_options);
        y_part = at::empty({len, targets_of(*part)}, eval_options);
      }
      const auto x = x_part.narrow(0, 0, len);
      const auto y64 = y_part.narrow(0, 0, len);
      normalize_into(*model_->normalization, part->features, x);
      standardize_targets_into(*model_->target, part->targets, y64);
      const auto [loss, mse] = detail::evaluate(*model_, x, y64, scale64);
      const auto n = static_cast<double>(y64.numel());
      loss_sum += loss * n;
      mse_sum += mse * n;
      count += n;
    }
    return {loss_sum / count, mse_sum / count};
  }

 private:
  static int64_t targets_of(const data::Table& part) {
    return part.targets.dim() == 1 ? 1 : part.targets.size(1);
  }

  // Room for `rows` prepared rows in the shuffle buffer (x_, y_), keeping
  // the held ones: the buffer is allocated once and grows only for a part
  // larger than any before.
  void reserve(int64_t rows,
               int64_t features,
               int64_t targets,
               const at::TensorOptions& options) {
    if (x_.defined() && x_.size(0) >= rows) {
      return;
    }
    const int64_t capacity = std::max(rows, buffer_rows_ + rows - held_);
    auto x = at::empty({capacity, features}, options);
    auto y = at::empty({capacity, targets}, options);
    if (held_ > 0) {
      x.narrow(0, 0, held_).copy_(x_.narrow(0, 0, held_));
      y.narrow(0, 0, held_).copy_(y_.narrow(0, 0, held_));
    }
    x_ = std::move(x);
    y_ = std::move(y);
  }

  // Steps through the held rows (in a permuted order when shuffling) as one
  // block; moves the rows of a last incomplete batch to the buffer's front
  // for the next block, unless `last`.
  void flush(bool last, const BlockFn& fn) {
    if (held_ == 0) {
      return;
    }
    const auto x = x_.narrow(0, 0, held_);
    const auto y = y_.narrow(0, 0, held_);
    // The rows are visited through the permutation, not copied into its
    // order: only the rows held back for the next block are gathered.
    at::Tensor order;
    if (options_.shuffle() && batches > 1) {
      order = epoch_permutation(
                  generator_, options_.seed(), epoch_, held_, first_draw_)
                  .to(x.device());
      first_draw_ = false;
    }
    // The last block takes every row left; the others whole batches only.
    const int64_t steps =
        last ? batches_per_epoch(held_, batch_) : held_ / batch_;
    if (steps > 0) {
      fn(BatchBlock{x, y, order, batch_, steps});
    }
    const int64_t used = std::min(steps * batch_, held_);
    const int64_t rest = held_ - used;
    if (rest > 0) {
      // Gathered (or copied) before being written back: the rows overlap
      // the buffer's front.
      const auto kept =
          order.defined() ? order.narrow(0, used, rest) : at::Tensor();
      const auto xr = kept.defined() ? x.index_select(0, kept)
                                     : x.narrow(0, used, rest).clone();
      const auto yr = kept.defined() ? y.index_select(0, kept)
                                     : y.narrow(0, used, rest).clone();
      x_.narrow(0, 0, rest).copy_(xr);
      y_.narrow(0, 0, rest).copy_(yr);
    }
    held_ = rest;
  }

  nn::StandardizedRegressor& model_;
  data::TableStream& stream_;
  const FitOptions& options_;
  at::Generator generator_;
  int64_t batch_ = 0;
  int64_t buffer_rows_ = 0;
  // The epoch being read: its number, whether its generator is still to be
  // seeded; the shuffle buffer's prepared rows and how many it holds.
  int64_t epoch_ = 0;
  bool first_draw_ = true;
  at::Tensor x_, y_;
  int64_t held_ = 0;
};

}  // namespace

std::unique_ptr<TrainingRows> table_rows(nn::StandardizedRegressor& model,
                                         const data::Table& train,
                                         const FitOptions& options) {
  return std::make_unique<TableRows>(model, train, options);
}

std::unique_ptr<TrainingRows> stream_rows(nn::StandardizedRegressor& model,
                                          data::TableStream& stream,
                                          int64_t n_rows,
                                          const FitOptions& options) {
  return std::make_unique<StreamRows>(model, stream, n_rows, options);
}

}  // namespace normopt::train::detail
