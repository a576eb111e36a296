// torch.classes.normopt.{Normalization, TargetStandardizer}: thin handles on
// the nn modules, so Python and TorchScript get the C++ statistics, math and
// error messages unchanged.
#include <normopt/jit/classes.h>

#include <ATen/ATen.h>
#include <torch/custom_class.h>
#include <torch/library.h>

#include "../util/library.h"

#include <utility>

namespace normopt::jit {
namespace {

// Bumped whenever a state tuple changes; __setstate__ refuses other versions
// with a message instead of misreading the fields. (The fields are grouped in
// tuples of at most three: IValue stores those inline.)
constexpr int64_t kStateVersion = 1;

void check_version(const char* cls, int64_t version) {
  TORCH_CHECK(version == kStateVersion,
              cls,
              ".__setstate__: saved state has version ",
              version,
              " but this normopt reads version ",
              kStateVersion,
              "; load the file with the normopt release that saved it");
}

// The statistics of a pickled scaler: both defined floating tensors of one
// shape, and a non-negative count.
void check_stats(const char* cls,
                 const char* a_name,
                 const at::Tensor& a,
                 const char* b_name,
                 const at::Tensor& b,
                 int64_t count) {
  TORCH_CHECK(a.defined() && b.defined() &&
                  at::isFloatingType(a.scalar_type()) &&
                  at::isFloatingType(b.scalar_type()),
              cls,
              ".__setstate__: saved ",
              a_name,
              " and ",
              b_name,
              " must be floating-point tensors; the file is corrupt");
  TORCH_CHECK(a.sizes() == b.sizes(),
              cls,
              ".__setstate__: saved ",
              a_name,
              " has shape ",
              a.sizes(),
              " but ",
              b_name,
              " has shape ",
              b.sizes(),
              "; the file is corrupt");
  TORCH_CHECK(count >= 0,
              cls,
              ".__setstate__: saved sample count is ",
              count,
              "; the file is corrupt");
}

}  // namespace

// ---- Normalization ----------------------------------------------------------

NormalizationHolder::NormalizationHolder(std::vector<int64_t> axis,
                                         double eps,
                                         bool invert)
    : module(nn::NormalizationOptions()
                 .axis(std::move(axis))
                 .eps(eps)
                 .invert(invert)) {}

NormalizationHolder::NormalizationHolder(nn::Normalization module_)
    : module(std::move(module_)) {
  TORCH_CHECK(!module.is_empty(),
              "NormalizationHolder: got an empty Normalization module holder");
}

void NormalizationHolder::adapt(const at::Tensor& x) {
  module->adapt(x);
}

void NormalizationHolder::update(const at::Tensor& batch) {
  module->update(batch);
}

void NormalizationHolder::reset_statistics() {
  module->reset_statistics();
}

at::Tensor NormalizationHolder::forward(const at::Tensor& x) {
  return module->forward(x);
}

at::Tensor NormalizationHolder::inverse(const at::Tensor& x) {
  return module->inverse(x);
}

at::Tensor NormalizationHolder::mean() const {
  return module->mean.detach().clone();
}

at::Tensor NormalizationHolder::variance() const {
  return module->variance.detach().clone();
}

at::Tensor NormalizationHolder::scale() const {
  return module->scale().detach();
}

int64_t NormalizationHolder::count() const {
  return module->count.item<int64_t>();
}

bool NormalizationHolder::is_adapted() const {
  return module->is_adapted();
}

std::vector<int64_t> NormalizationHolder::axis() const {
  return module->options.axis();
}

double NormalizationHolder::eps() const {
  return module->options.eps();
}

bool NormalizationHolder::invert() const {
  return module->options.invert();
}

NormalizationState NormalizationHolder::state() const {
  // Fixed statistics (given in the options) are saved like learned ones with
  // count 0; the restored layer then uses them the same way.
  return {
      kStateVersion,
      {module->options.axis(), module->options.eps(), module->options.invert()},
      {module->mean.detach().cpu().clone(),
       module->variance.detach().cpu().clone(),
       module->count.item<int64_t>()}};
}

c10::intrusive_ptr<NormalizationHolder> NormalizationHolder::from_state(
    NormalizationState state) {
  const auto version = std::get<0>(state);
  auto& [axis, eps, invert] = std::get<1>(state);
  auto& [mean, variance, count] = std::get<2>(state);
  check_version("Normalization", version);
  check_stats("Normalization", "mean", mean, "variance", variance, count);
  auto self = c10::make_intrusive<NormalizationHolder>(axis, eps, invert);
  if (mean.numel() > 0) {
    at::NoGradGuard no_grad;
    auto& m = *self->module;
    m.mean.set_(mean.to(m.mean.device()).clone());
    m.variance.set_(variance.to(m.variance.device()).clone());
    m.count.fill_(count);
  }
  return self;
}

// ---- TargetStandardizer -----------------------------------------------------

TargetStandardizerHolder::TargetStandardizerHolder(const std::string& method,
                                                   double eps)
    : module(nn::TargetStandardizerOptions()
                 .method(nn::method_from_name(method, "TargetStandardizer"))
                 .eps(eps)) {}

TargetStandardizerHolder::TargetStandardizerHolder(
    nn::TargetStandardizer module_)
    : module(std::move(module_)) {
  TORCH_CHECK(!module.is_empty(),
              "TargetStandardizerHolder: got an empty TargetStandardizer "
              "module holder");
}

void TargetStandardizerHolder::fit(const at::Tensor& y) {
  module->fit(y);
}

at::Tensor TargetStandardizerHolder::transform(const at::Tensor& y) const {
  return module->transform(y);
}

at::Tensor TargetStandardizerHolder::inverse_transform(
    const at::Tensor& z) const {
  return module->inverse_transform(z);
}

at::Tensor TargetStandardizerHolder::loc() const {
  return module->loc.detach().clone();
}

at::Tensor TargetStandardizerHolder::scale() const {
  return module->scale.detach().clone();
}

int64_t TargetStandardizerHolder::count() const {
  return module->count.item<int64_t>();
}

bool TargetStandardizerHolder::is_fitted() const {
  return module->is_fitted();
}

std::string TargetStandardizerHolder::method() const {
  return nn::method_name(module->options.method());
}

double TargetStandardizerHolder::eps() const {
  return module->options.eps();
}

TargetStandardizerState TargetStandardizerHolder::state() const {
  return {kStateVersion,
          {method(), module->options.eps()},
          {module->loc.detach().cpu().clone(),
           module->scale.detach().cpu().clone(),
           module->count.item<int64_t>()}};
}

c10::intrusive_ptr<TargetStandardizerHolder>
TargetStandardizerHolder::from_state(TargetStandardizerState state) {
  const auto version = std::get<0>(state);
  auto& [method, eps] = std::get<1>(state);
  auto& [loc, scale, count] = std::get<2>(state);
  check_version("TargetStandardizer", version);
  check_stats("TargetStandardizer", "loc", loc, "scale", scale, count);
  auto self = c10::make_intrusive<TargetStandardizerHolder>(method, eps);
  if (loc.numel() > 0) {
    at::NoGradGuard no_grad;
    auto& m = *self->module;
    m.loc.set_(loc.to(m.loc.device()).clone());
    m.scale.set_(scale.to(m.scale.device()).clone());
    m.count.fill_(count);
  }
  return self;
}

// ---- Registration -----------------------------------------------------------

NORMOPT_LIBRARY_FRAGMENT(m) {
  using N = NormalizationHolder;
  m.class_<N>("Normalization")
      .def(torch::init<std::vector<int64_t>, double, bool>(),
           "Keras-style feature normalization; statistics per index along "
           "`axis`, learned by adapt()/update()",
           {torch::arg("axis") = std::vector<int64_t>{-1},
            torch::arg("eps") = 1e-7,
            torch::arg("invert") = false})
      .def("adapt",
           &N::adapt,
           "Replaces the statistics with those of x",
           {torch::arg("x")})
      .def("update",
           &N::update,
           "Merges the statistics of one more batch",
           {torch::arg("batch")})
      .def("reset_statistics", &N::reset_statistics, "Drops the statistics")
      .def("forward",
           &N::forward,
           "(x - mean) / scale (the inverse when invert=True)",
           {torch::arg("x")})
      .def(
          "inverse", &N::inverse, "The inverse of forward()", {torch::arg("x")})
      .def("mean", &N::mean, "Copy of the per-feature mean")
      .def("variance",
           &N::variance,
           "Copy of the per-feature population variance")
      .def("scale", &N::scale, "The per-feature divisor forward() uses")
      .def("count", &N::count, "Number of samples the statistics summarize")
      .def("is_adapted", &N::is_adapted, "Whether statistics are set")
      .def("axis", &N::axis, "The feature dimension(s)")
      .def("eps", &N::eps, "Smallest scale of a non-constant feature")
      .def("invert", &N::invert, "Whether forward() de-standardizes")
      .def_pickle(
          [](const c10::intrusive_ptr<N>& self) { return self->state(); },
          [](NormalizationState state) {
            return N::from_state(std::move(state));
          });

  using T = TargetStandardizerHolder;
  m.class_<T>("TargetStandardizer")
      .def(torch::init<std::string, double>(),
           "Affine target scaling: \"zscore\", \"minmax\" or \"none\"",
           {torch::arg("method") = std::string("zscore"),
            torch::arg("eps") = 1e-7})
      .def("fit",
           &T::fit,
           "Learns loc and scale from targets of shape (N) or (N, k)",
           {torch::arg("y")})
      .def("transform", &T::transform, "(y - loc) / scale", {torch::arg("y")})
      .def("inverse_transform",
           &T::inverse_transform,
           "z * scale + loc",
           {torch::arg("z")})
      .def("forward", &T::transform, "Same as transform()", {torch::arg("y")})
      .def("loc", &T::loc, "Copy of the offset (mean or minimum)")
      .def("scale", &T::scale, "Copy of the divisor")
      .def("count", &T::count, "Number of targets fitted on")
      .def("is_fitted", &T::is_fitted, "Whether fit() has run")
      .def("method", &T::method, "\"zscore\", \"minmax\" or \"none\"")
      .def("eps", &T::eps, "Smallest divisor of a non-constant target")
      .def_pickle(
          [](const c10::intrusive_ptr<T>& self) { return self->state(); },
          [](TargetStandardizerState state) {
            return T::from_state(std::move(state));
          });
}

}  // namespace normopt::jit
