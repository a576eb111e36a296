#include "training_rows.h"

#include "batches.h"
#include "checks.h"
#include "objective.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
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
    xs_.clear();
    ys_.clear();
    held_ = 0;
    stream_.rewind();
    while (auto part = stream_.next()) {
      check_table(model_, *part, "fit", "training");
      xs_.push_back(prepared_inputs(model_, part->features, data_options));
      ys_.push_back(prepared_targets(model_, part->targets, data_options));
      held_ += part->size();
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
    while (auto part = stream_.next()) {
      const auto x = prepared_inputs(model_, part->features, data_options);
      const auto y64 = prepared_targets(model_, part->targets, eval_options);
      const auto [loss, mse] = detail::evaluate(*model_, x, y64, scale64);
      const auto n = static_cast<double>(y64.numel());
      loss_sum += loss * n;
      mse_sum += mse * n;
      count += n;
    }
    return {loss_sum / count, mse_sum / count};
  }

 private:
  // Steps through the held rows (in a permuted order when shuffling) as one
  // block;
  // keeps the rows of a last incomplete batch, unless `last`.
  void flush(bool last, const BlockFn& fn) {
    if (held_ == 0) {
      return;
    }
    auto x = xs_.size() == 1 ? xs_[0] : at::cat(xs_);
    auto y = ys_.size() == 1 ? ys_[0] : at::cat(ys_);
    xs_.clear();
    ys_.clear();
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
    if (used < held_) {
      if (order.defined()) {
        const auto rest = order.narrow(0, used, held_ - used);
        xs_.push_back(x.index_select(0, rest));
        ys_.push_back(y.index_select(0, rest));
      } else {
        xs_.push_back(x.narrow(0, used, held_ - used));
        ys_.push_back(y.narrow(0, used, held_ - used));
      }
    }
    held_ -= used;
  }

  nn::StandardizedRegressor& model_;
  data::TableStream& stream_;
  const FitOptions& options_;
  at::Generator generator_;
  int64_t batch_ = 0;
  int64_t buffer_rows_ = 0;
  // The epoch being read: its number, whether its generator is still to be
  // seeded, and the rows held back for the next block.
  int64_t epoch_ = 0;
  bool first_draw_ = true;
  std::vector<at::Tensor> xs_, ys_;
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
