// export_pipeline: a StandardizedRegressor as a self-contained TorchScript
// module. The module is built programmatically (buffers + TorchScript source
// using ATen ops only), not traced, so the file loads without normopt and
// its forward() is the C++ module's math written out op for op.
#include <normopt/jit/export.h>
#include <normopt/nn/affine.h>

#include "../util/files.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace normopt::jit {
namespace {

// TorchScript compiled from C++ resolves only `torch.*` (ATen); the checks in
// forward() also need an exception to raise, which Python's resolver would
// supply. `PipelineError("...")` raises one whose message reads
// "normopt pipeline: ...".
struct PipelineResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name,
      torch::jit::GraphFunction& m,
      const torch::jit::SourceRange& loc) override {
    if (name == "PipelineError") {
      return std::make_shared<torch::jit::ExceptionValue>("normopt pipeline");
    }
    return torch::jit::nativeResolver()->resolveValue(name, m, loc);
  }
  c10::TypePtr resolveType(const std::string& /*name*/,
                           const torch::jit::SourceRange& /*loc*/) override {
    return nullptr;
  }
};

at::Tensor frozen_copy(const at::Tensor& t) {
  return t.detach().to(at::kCPU).clone().contiguous();
}

// The forward() of the exported module. Each step mirrors the C++ code it
// replaces: NormalizationImpl::broadcast_stats (view of the statistics),
// ops::standardize / ops::destandardize (dtype promotion and rounding), and
// LinearRegressorImpl::forward (at::linear).
std::string forward_source(bool invert, bool bias) {
  std::string src = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    if not x.is_floating_point():
        raise PipelineError("expected floating-point features, got an integer or bool tensor; convert them first, e.g. x.float()")
    n = x.dim()
    if n < 1 or x.size(n - 1) != self.in_features:
        raise PipelineError("expected features with " + str(self.in_features) + " columns in the last dimension, got shape " + str(x.size()))
    dims: List[int] = []
    for a in self.axis:
        if a < -n or a >= n:
            raise PipelineError("normalization axis " + str(a) + " is out of range for a " + str(n) + "-D input")
        if a < 0:
            dims.append(a + n)
        else:
            dims.append(a)
    dims.sort()
    view = [1] * n
    feature_sizes: List[int] = []
    for d in dims:
        view[d] = x.size(d)
        feature_sizes.append(x.size(d))
    if feature_sizes != self.mean.size():
        raise PipelineError("input has feature shape " + str(feature_sizes) + " but the statistics have shape " + str(self.mean.size()))
    mean = self.mean
    scale = self.scale
    if len(dims) > 0:
        mean = mean.reshape(view)
        scale = scale.reshape(view)
    dt = torch.promote_types(x.dtype, mean.dtype)
)JIT";
  src += invert ? "    z = x.to(dt) * scale.to(dt) + mean.to(dt)\n"
                : "    z = (x.to(dt) - mean.to(dt)) / scale.to(dt)\n";
  src += "    z = z.to(self.weight.dtype)\n";
  src += bias ? "    y = torch.linear(z, self.weight, self.bias)\n"
              : "    y = torch.linear(z, self.weight)\n";
  src += R"JIT(
    dt = torch.promote_types(y.dtype, self.target_loc.dtype)
    out = y.to(dt) * self.target_scale.to(dt) + self.target_loc.to(dt)
    return out.to(y.dtype)
)JIT";
  return src;
}

}  // namespace

void export_pipeline(const nn::StandardizedRegressor& model,
                     const std::string& path) {
  TORCH_CHECK(!model.is_empty(),
              "export_pipeline: got an empty StandardizedRegressor holder; "
              "nothing to write to ",
              path);
  auto regressor = model->regressor_module();
  const auto* linear = nn::as_affine(*regressor);
  TORCH_CHECK(linear != nullptr,
              "export_pipeline supports affine regressors (nn::Affine, e.g. "
              "LinearRegressor); got ",
              regressor->name(),
              " (not written to ",
              path,
              ")");
  const auto& norm = *model->normalization;
  TORCH_CHECK(norm.is_adapted(),
              "export_pipeline: the input Normalization has no statistics, so ",
              path,
              " was not written; call model->fit_statistics(x, y) (or train "
              "with normopt::train::fit) first");
  TORCH_CHECK(model->target->is_fitted(),
              "export_pipeline: the TargetStandardizer is not fitted, so ",
              path,
              " was not written; call model->fit_statistics(x, y) (or train "
              "with normopt::train::fit) first");
  const auto& weight = linear->affine_weight();
  const auto& bias_tensor = linear->affine_bias();
  const int64_t in_features = weight.size(1);
  const auto& axis = norm.options.axis();
  if (axis.size() == 1 && axis[0] == -1) {
    TORCH_CHECK(norm.mean.dim() == 1 && norm.mean.size(0) == in_features,
                "export_pipeline: the input Normalization was adapted on ",
                norm.mean.sizes(),
                " features but the regressor takes ",
                in_features,
                "; ",
                path,
                " was not written");
  }

  at::NoGradGuard no_grad;
  torch::jit::Module module(
      c10::QualifiedName("__torch__.normopt.StandardizedRegressorPipeline"));
  module.register_attribute("axis", c10::ListType::ofInts(), c10::IValue(axis));
  module.register_attribute(
      "in_features", c10::IntType::get(), c10::IValue(in_features));
  module.register_attribute(
      "out_features", c10::IntType::get(), c10::IValue(weight.size(0)));
  // Python's nn.Module API (.training, .eval()) expects this attribute;
  // modules scripted from Python get it automatically, C++-built ones do not.
  module.register_attribute("training", c10::BoolType::get(), false);
  module.register_buffer("mean", frozen_copy(norm.mean));
  module.register_buffer("scale", frozen_copy(norm.scale()));
  module.register_buffer("target_loc", frozen_copy(model->target->loc));
  module.register_buffer("target_scale", frozen_copy(model->target->scale));
  // Parameters (not buffers) so a Python user can fine-tune them; gradients
  // are off because the file is meant for inference.
  module.register_parameter("weight", frozen_copy(weight), /*is_buffer=*/false);
  const bool bias = bias_tensor.defined();
  if (bias) {
    module.register_parameter(
        "bias", frozen_copy(bias_tensor), /*is_buffer=*/false);
  }
  module.define(forward_source(norm.options.invert(), bias),
                std::make_shared<PipelineResolver>());
  module.eval();

  std::ostringstream bytes;
  module.save(bytes);
  util::write_atomically(path, bytes.str(), "export_pipeline");
}

torch::jit::Module load_pipeline(const std::string& path) {
  try {
    return torch::jit::load(path, at::Device(at::kCPU));
  } catch (const c10::Error& e) {
    TORCH_CHECK(false,
                "load_pipeline: cannot load ",
                path,
                ": ",
                e.what_without_backtrace());
  }
}

}  // namespace normopt::jit
