#include "serialize.h"

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>

#include <utility>
#include <vector>

namespace normopt::nn::detail {
namespace {

struct Pending {
  at::Tensor target;
  at::Tensor value;
};

void collect(torch::nn::Module& module,
             torch::serialize::InputArchive& archive,
             const std::string& prefix,
             std::vector<Pending>& out) {
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
    out.push_back({local, stored.to(local.device(), local.scalar_type())});
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
    collect(*child.value(), child_archive, prefix + child.key() + ".", out);
  }
}

}  // namespace

void load_checked(torch::nn::Module& module,
                  torch::serialize::InputArchive& archive) {
  std::vector<Pending> pending;
  collect(module, archive, "", pending);
  at::NoGradGuard no_grad;
  for (auto& p : pending) {
    p.target.set_(p.value);
  }
}

void check_loadable(torch::nn::Module& module,
                    torch::serialize::InputArchive& archive) {
  std::vector<Pending> pending;
  collect(module, archive, "", pending);
}

}  // namespace normopt::nn::detail
