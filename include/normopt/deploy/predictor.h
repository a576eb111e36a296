#pragma once

/// Serving from C++: an AOTInductor package (`.pt2`) written by
/// `normopt.export.aoti_package` or `python -m normopt.export CHECKPOINT
/// PACKAGE.pt2`, run through LibTorch's `AOTIModelPackageLoader`.
///
/// \code
///   normopt::deploy::Predictor predictor("income.pt2");
///   at::Tensor incomes = predictor.predict(features);  // [rows, features]
/// \endcode
///
/// The package is compiled code: raw features in, original units out, with
/// the statistics and weights inside. normopt's statistics ops are
/// composites that AOTInductor compiles in; a package that still calls a
/// normopt op with its own kernel (its metadata's `normopt.ops`, e.g. a
/// fused optimizer step) needs it registered, which linking libnormopt
/// does. The loader checks the package's metadata first and
/// refuses, with a message that says which and what to do, a package
/// compiled with another torch than the LibTorch this program runs, or one
/// needing a normopt op this process lacks.
///
/// Which route when: AOTInductor packages are PyTorch's maintained path
/// (torch.export); TorchScript files (normopt::jit::export_pipeline) need
/// no compiler to produce and no Python, but TorchScript is deprecated
/// upstream.

#include <normopt/macros.h>

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace normopt::deploy {

/// The keys of the metadata every package carries, in one place:
/// normopt.export writes them (Python reads them from the op
/// `normopt::package_metadata_keys`, which returns them in this order) and
/// Predictor checks them.
inline constexpr const char* kMetadataTorch = "normopt.torch";
inline constexpr const char* kMetadataVersion = "normopt.version";
inline constexpr const char* kMetadataOps = "normopt.ops";
/// The first input's dtype ("float64") and feature count (last dimension).
inline constexpr const char* kMetadataInputDtype = "normopt.input_dtype";
inline constexpr const char* kMetadataInputFeatures = "normopt.input_features";

class NORMOPT_API Predictor {
 public:
  /// Loads the package at `path` (CPU packages; a CUDA package runs on
  /// `device_index`, -1 = the current device). Throws c10::Error naming the
  /// path when the file is missing, is not a package, or fails the checks
  /// above.
  explicit Predictor(const std::string& path, int device_index = -1);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  /// The package's output for `features` ([rows, features], the dtype and
  /// feature count it was compiled for; rows may vary).
  at::Tensor predict(const at::Tensor& features);

  /// The package's metadata (normopt.torch, normopt.ops, AOTI_* keys).
  const std::unordered_map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace normopt::deploy
