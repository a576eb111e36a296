#pragma once
// Internal: restores a module's train/eval mode on every exit path (fit()
// and diagnose() switch modes and must leave the model as they found it).

#include <torch/nn/module.h>

namespace normopt::train::detail {

class ModeGuard {
 public:
  explicit ModeGuard(torch::nn::Module& module)
      : module_(module), was_training_(module.is_training()) {}
  ~ModeGuard() {
    module_.train(was_training_);
  }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace normopt::train::detail
