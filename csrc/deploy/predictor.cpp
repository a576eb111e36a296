#include <normopt/deploy/predictor.h>

#include "../util/files.h"
#include "../util/library.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/version.h>

#include <sstream>
#include <string>
#include <vector>

namespace normopt::deploy {
namespace {

constexpr const char* kWhere = "normopt::deploy::Predictor";

std::string release(const std::string& version) {
  return version.substr(0, version.find('+'));  // "2.13.0+cpu" -> "2.13.0"
}

void check_metadata(const std::string& path,
                    const std::unordered_map<std::string, std::string>& meta) {
  if (const auto built = meta.find(kMetadataTorch); built != meta.end()) {
    TORCH_CHECK(release(built->second) == TORCH_VERSION,
                kWhere,
                ": '",
                path,
                "' was compiled with torch ",
                built->second,
                ", and this program runs LibTorch ",
                TORCH_VERSION,
                ": compile the package again with the torch whose LibTorch "
                "this program links (python -m normopt.export ...)");
  }
  if (const auto ops = meta.find(kMetadataOps); ops != meta.end()) {
    std::istringstream names(ops->second);
    std::string op;
    while (std::getline(names, op, ',')) {
      TORCH_CHECK(op.empty() || c10::Dispatcher::singleton()
                                    .findSchema({"normopt::" + op, ""})
                                    .has_value(),
                  kWhere,
                  ": '",
                  path,
                  "' calls normopt::",
                  op,
                  ", which is not registered in this process (another copy "
                  "of libnormopt registered first, or an older one?)");
    }
  }
}

}  // namespace

struct Predictor::Impl {
  std::string path;
  std::unordered_map<std::string, std::string> metadata;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
};

Predictor::Predictor(const std::string& path, int device_index)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  TORCH_CHECK(util::path_kind(path) == util::PathKind::kFile,
              kWhere,
              ": no package at '",
              path,
              "' (",
              util::path_kind(path) == util::PathKind::kMissing
                  ? "no such file"
                  : "not a regular file",
              "); write one with python -m normopt.export CHECKPOINT ",
              path);
  try {
    impl_->metadata =
        torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(
            path, "model");
  } catch (const c10::Error& e) {
    // LibTorch's message lists every file of the archive: keep its first line.
    const std::string reason = e.msg().substr(0, e.msg().find('\n'));
    TORCH_CHECK(false,
                kWhere,
                ": '",
                path,
                "' is not an AOTInductor package (",
                reason,
                "); write one with python -m normopt.export");
  } catch (const std::exception& e) {
    TORCH_CHECK(false,
                kWhere,
                ": '",
                path,
                "' is not an AOTInductor package (",
                e.what(),
                ")");
  }
  check_metadata(path, impl_->metadata);
  impl_->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
      path,
      "model",
      /*run_single_threaded=*/false,
      /*num_runners=*/1,
      static_cast<c10::DeviceIndex>(device_index));
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

at::Tensor Predictor::predict(const at::Tensor& features) {
  TORCH_CHECK(
      impl_ != nullptr, kWhere, ": predict() on a moved-from Predictor");
  TORCH_CHECK(features.defined() && features.dim() == 2,
              kWhere,
              ": features must be a 2-D tensor [rows, features], got ",
              features.defined() ? features.sizes() : at::IntArrayRef{});
  // The package is compiled for one dtype and feature count (metadata of
  // normopt.export); say so instead of failing inside the compiled code.
  const auto& meta = impl_->metadata;
  if (const auto dtype = meta.find(kMetadataInputDtype); dtype != meta.end()) {
    const at::ScalarType want = dtype->second == "float64" ? at::kDouble
                                : dtype->second == "float32"
                                    ? at::kFloat
                                    : features.scalar_type();
    TORCH_CHECK(features.scalar_type() == want,
                kWhere,
                ": '",
                impl_->path,
                "' was compiled for ",
                dtype->second,
                " features, got ",
                features.scalar_type(),
                "; convert them with .to()");
  }
  if (const auto n = meta.find(kMetadataInputFeatures); n != meta.end()) {
    TORCH_CHECK(std::to_string(features.size(1)) == n->second,
                kWhere,
                ": '",
                impl_->path,
                "' takes ",
                n->second,
                " features per row, got ",
                features.size(1));
  }
  // The compiled code assumes a contiguous input (row stride = feature
  // count) and, unchecked, reads a strided one wrongly: copy it if needed.
  std::vector<at::Tensor> outputs = impl_->loader->run({features.contiguous()});
  TORCH_CHECK(outputs.size() == 1,
              kWhere,
              ": '",
              impl_->path,
              "' returned ",
              outputs.size(),
              " outputs; a normopt package returns one");
  return outputs[0];
}

const std::unordered_map<std::string, std::string>& Predictor::metadata()
    const {
  return impl_->metadata;
}

// The keys for Python (python/normopt/export.py), in the header's order.
NORMOPT_LIBRARY_FRAGMENT(m) {
  m.def("package_metadata_keys", []() -> std::vector<std::string> {
    return {kMetadataTorch,
            kMetadataVersion,
            kMetadataOps,
            kMetadataInputDtype,
            kMetadataInputFeatures};
  });
}

}  // namespace normopt::deploy
