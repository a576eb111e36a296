#pragma once
// Internal: shape-checked module loading shared by every normopt module.

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>

#include <string>

namespace normopt::nn::detail {

/// Loads `module`'s parameters, buffers and children (recursively) from
/// `archive` like torch::nn::Module::load, but refuses a checkpoint whose
/// tensors are missing or shaped differently, naming the tensor and both
/// shapes. A buffer with no elements (statistics not fitted yet) takes the
/// checkpoint's shape. Loaded tensors keep this module's device and dtype.
/// Nothing is modified unless the whole checkpoint matches.
void load_checked(torch::nn::Module& module,
                  torch::serialize::InputArchive& archive);

/// The checks of load_checked() without the load: throws the same errors,
/// changes nothing.
void check_loadable(torch::nn::Module& module,
                    torch::serialize::InputArchive& archive);

}  // namespace normopt::nn::detail
