#include <normopt/nn/detail/serialize.h>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>

#include <utility>
#include <vector>

namespace normopt::nn::detail {
namespace {

// Visits the module's own parameters, own buffers, then its children's, as
// fn(name, local tensor, is_buffer, archive of this module or null).
void collect(torch::nn::Module& module,
             torch::serialize::InputArchive& archive,
             const std::string& prefix,
             std::vector<NamedState>& out,
             std::vector<at::Tensor>& targets) {
  auto read_one = [&](const std::string& key, at::Tensor& local, bool buffer) {
    const auto name = prefix + key;
    at::Tensor stored;
    TORCH_CHECK(archive.try_read(key, stored, buffer),
                "normopt: cannot load checkpoint into ",
                module.name(),
                ": it has no tensor '",
                name,
                "'; it was saved from a different model");
    const bool unfitted = buffer && local.numel() == 0;
    TORCH_CHECK(
        unfitted || stored.sizes() == local.sizes(),
        "normopt: cannot load checkpoint into ",
        module.name(),
        ": '",
        name,
        "' has shape ",
        stored.sizes(),
        " in the checkpoint but ",
        local.sizes(),
        " in this module; build the module with the same sizes as the one "
        "that was saved");
    out.push_back(
        {name, stored, stored.to(local.device(), local.scalar_type())});
    targets.push_back(local);
  };
  for (auto& p : module.named_parameters(/*recurse=*/false)) {
    read_one(p.key(), p.value(), /*buffer=*/false);
  }
  for (auto& b : module.named_buffers(/*recurse=*/false)) {
    read_one(b.key(), b.value(), /*buffer=*/true);
  }
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    TORCH_CHECK(archive.try_read(child.key(), child_archive),
                "normopt: cannot load checkpoint into ",
                module.name(),
                ": it has no submodule '",
                prefix + child.key(),
                "'; it was saved from a different model");
    collect(*child.value(),
            child_archive,
            prefix + child.key() + ".",
            out,
            targets);
  }
}

void walk(torch::nn::Module& module,
          const std::string& prefix,
          std::vector<NamedState>& out) {
  for (auto& p : module.named_parameters(/*recurse=*/false)) {
    out.push_back({prefix + p.key(), p.value(), p.value()});
  }
  for (auto& b : module.named_buffers(/*recurse=*/false)) {
    out.push_back({prefix + b.key(), b.value(), b.value()});
  }
  for (auto& child : module.named_children()) {
    walk(*child.value(), prefix + child.key() + ".", out);
  }
}

}  // namespace

std::vector<NamedState> state_in_load_order(torch::nn::Module& module) {
  std::vector<NamedState> out;
  walk(module, "", out);
  return out;
}

std::vector<NamedState> read_checked(torch::nn::Module& module,
                                     torch::serialize::InputArchive& archive) {
  std::vector<NamedState> out;
  std::vector<at::Tensor> targets;
  collect(module, archive, "", out, targets);
  return out;
}

void load_checked(torch::nn::Module& module,
                  torch::serialize::InputArchive& archive) {
  std::vector<NamedState> values;
  std::vector<at::Tensor> targets;
  collect(module, archive, "", values, targets);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < values.size(); ++i) {
    targets[i].set_(values[i].value);
  }
}

}  // namespace normopt::nn::detail
