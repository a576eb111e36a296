#include <normopt/train/forecast_watch.h>

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdio>
#include <utility>

namespace normopt::train {

ForecastWatch::ForecastWatch(Diagnosis forecast, int64_t first_check)
    : forecast_(std::move(forecast)), next_check_(first_check) {
  TORCH_CHECK(first_check >= 1,
              "ForecastWatch: first_check must be at least 1, got ",
              first_check);
}

bool ForecastWatch::observe(int64_t step, double mse) {
  if (warned() || step < next_check_) {
    return false;
  }
  while (next_check_ <= step) {
    next_check_ *= 2;
  }
  const double expected = forecast_.mse_at(step);
  if (std::isnan(expected) || !(mse > kBehind * expected)) {
    return false;
  }
  std::string fix = "check the learning rate and the target scale";
  for (const auto& f : forecast_.findings) {
    if (f.severity == Severity::kWarning) {
      fix = f.message;
      break;
    }
  }
  char head[200];
  std::snprintf(head,
                sizeof(head),
                "after %lld steps the training MSE is %.3g, %.3gx the "
                "forecast %.3g: the run is falling behind. ",
                static_cast<long long>(step),
                mse,
                mse / expected,
                expected);
  warning_ = "ForecastWatch: " + std::string(head) + fix;
  TORCH_WARN(warning_);
  return true;
}

void ForecastWatch::on_epoch_end(FitState& state, const EpochLog& log) {
  observe(state.epoch * state.batches, log.train_mse);
}

}  // namespace normopt::train
