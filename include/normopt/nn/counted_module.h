#pragma once

/// The base of the modules whose statistics carry a sample count
/// (Normalization, TargetStandardizer).

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>

namespace normopt::nn {

/// torch::nn::Cloneable whose `to` keeps the sample count's exact int64
/// values: Module::to converts every buffer to the new dtype, and through
/// float32 a count past 2^24 would round, through float16 past 2048, through
/// bfloat16 past 256. `Derived` holds the count as `at::Tensor count`.
template <typename Derived>
class CountedModule : public torch::nn::Cloneable<Derived> {
 public:
  void to(torch::Device device,
          torch::Dtype dtype,
          bool non_blocking = false) override {
    keeping_count([&] { torch::nn::Module::to(device, dtype, non_blocking); });
  }
  void to(torch::Dtype dtype, bool non_blocking = false) override {
    keeping_count([&] { torch::nn::Module::to(dtype, non_blocking); });
  }
  using torch::nn::Module::to;

 private:
  // Runs `cast` (a Module::to call), then gives the count back its values
  // on the module's new device.
  template <typename Cast>
  void keeping_count(const Cast& cast) {
    at::Tensor& count = static_cast<Derived&>(*this).count;
    const at::Tensor exact = count.detach();
    cast();
    count.set_data(exact.to(count.device()));
  }
};

}  // namespace normopt::nn
