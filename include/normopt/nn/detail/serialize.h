#pragma once
// Internal (namespace detail, not normopt's API: it may change in any
// release). One module's interface for another inside the library, kept
// in include/normopt/<module>/detail/ so that no file reaches into another
// module's csrc/ folder.
//
// Shape-checked module loading shared by every normopt module;
// also the nn module's interface for train/checkpoint.cpp, which checks a
// checkpoint's model against the model (read_checked) before loading
// anything.

#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>

#include <string>
#include <vector>

namespace normopt::nn::detail {

/// A parameter or buffer by its dotted name ("regressor.weight").
struct NamedState {
  std::string name;
  /// The tensor as saved (checkpoint side) or as held (module side).
  at::Tensor stored;
  /// read_checked(): `stored` in this module's device and dtype.
  at::Tensor value;
};

/// The module's parameters and buffers in load order: each module's own
/// parameters, then its own buffers, then its children's, depth first.
std::vector<NamedState> state_in_load_order(torch::nn::Module& module);

/// The checkpoint's values for `module`, in state_in_load_order()'s order,
/// checked like load_checked() and not loaded.
std::vector<NamedState> read_checked(torch::nn::Module& module,
                                     torch::serialize::InputArchive& archive);

/// Loads `module`'s parameters, buffers and children (recursively) from
/// `archive` like torch::nn::Module::load, but refuses a checkpoint whose
/// tensors are missing or shaped differently, naming the tensor and both
/// shapes. A buffer with no elements (statistics not fitted yet) takes the
/// checkpoint's shape. Loaded tensors keep this module's device and dtype.
/// Nothing is modified unless the whole checkpoint matches.
void load_checked(torch::nn::Module& module,
                  torch::serialize::InputArchive& archive);

}  // namespace normopt::nn::detail
