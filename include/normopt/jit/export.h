#pragma once

/// Ship a trained StandardizedRegressor as one TorchScript file that needs
/// neither normopt nor C++ to run.
///
/// \code
///   normopt::nn::StandardizedRegressor model(normopt::nn::LinearRegressor(2));
///   ... // fit_statistics + training (e.g. normopt::train::fit)
///   normopt::jit::export_pipeline(model, "income_pipeline.pt");
/// \endcode
/// \code{.py}
///   pipeline = torch.jit.load("income_pipeline.pt")  # plain PyTorch
///   dollars = pipeline(torch.tensor([[35.0, 8.0]]))   # raw features in
/// \endcode

#include <normopt/macros.h>
#include <normopt/nn/standardized_regressor.h>
#include <torch/csrc/jit/api/module.h>

#include <string>

namespace normopt::jit {

/// Writes `model` to `path` as a TorchScript module whose `forward(x)` takes
/// raw features (N, F) (or any (..., F)) and returns predictions
/// (N, out_features) in the targets' original units: the math of
/// model->predict(x), step for step:
///
///   z = (x - mean) / scale           input Normalization (the inverse if
///                                    its options say invert=true)
///   y = z W^T + b                    the LinearRegressor
///   return y * target_scale + target_loc
///
/// The file holds buffers `mean`, `scale` (precomputed as
/// Normalization::scale() does), `target_loc`, `target_scale`, parameters
/// `weight` and `bias` (if any), attributes `axis`, `in_features`,
/// `out_features`, and plain ATen code only: torch.jit.load and
/// torch::jit::load run it without normopt loaded.
///
/// Dtypes: every tensor keeps the model's dtype (statistics float64 and
/// weights float32 for a default model), and forward() follows the C++
/// module: it standardizes in the wider of x's and the statistics' dtypes,
/// runs the linear layer in the weights' dtype (x of any floating dtype is
/// accepted and converted; the C++ module would require the weights' dtype),
/// and returns predictions in the weights' dtype. For x in the weights' dtype
/// the output equals model->predict(x) bit for bit on the same machine.
/// Bad input (integer dtype, wrong feature count) raises an error whose
/// message ends "RuntimeError: normopt pipeline: <what, which value>":
/// torch.jit.Error in Python (what every TorchScript `raise` becomes),
/// torch::jit::JITException in C++.
/// Tensors are saved on the CPU whatever the model's device; move the loaded
/// module with .to(device). The loaded module is in eval mode.
///
/// The file is first written to a new temporary file beside `path`, then
/// renamed over `path`, so a failed export never destroys an existing file.
///
/// Throws c10::Error naming `path` when: the regressor is not a
/// LinearRegressor ("export_pipeline supports LinearRegressor regressors;
/// got <type>"), the input Normalization is not adapted or the
/// TargetStandardizer not fitted, the statistics do not match the
/// regressor's in_features, or writing or renaming the file fails.
NORMOPT_API void export_pipeline(const nn::StandardizedRegressor& model,
                                 const std::string& path);

/// torch::jit::load(path) on the CPU, with errors rethrown as c10::Error
/// naming `path`. Works for any TorchScript file, including scripted modules
/// holding torch.classes.normopt objects: linking this function guarantees
/// that libnormopt, which registers those classes, is loaded.
NORMOPT_API torch::jit::Module load_pipeline(const std::string& path);

}  // namespace normopt::jit
