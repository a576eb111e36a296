#pragma once
// Internal: how normopt registers its ops and classes.
//
// NORMOPT_LIBRARY / NORMOPT_LIBRARY_FRAGMENT / NORMOPT_LIBRARY_IMPL are
// TORCH_LIBRARY / TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL for the
// `normopt` namespace, with one difference: they register only when this copy
// of libnormopt is the first loaded in the process. A second copy (the same
// library from another path, e.g. a build tree and an install both passed to
// torch.ops.load_library) would otherwise throw from torch's duplicate-
// registration check inside a static initializer, which no one can catch:
// the process aborts. Instead the copy registers nothing and warns once; the
// first copy keeps serving torch.ops.normopt and torch.classes.normopt.

#include <torch/library.h>

#include <cstdint>
#include <memory>
#include <optional>

namespace normopt::util::detail {

/// Whether this copy of libnormopt is the first one loaded in the process
/// (always true where loaded objects cannot be listed, i.e. outside glibc).
bool is_primary_copy();

/// Creates the torch::Library and runs `init` on it when this copy is the
/// primary one; returns null (and warns once) otherwise. The result lives as
/// long as the process, like TORCH_LIBRARY's static object.
std::unique_ptr<torch::Library> make_library(
    torch::Library::Kind kind,
    std::optional<c10::DispatchKey> key,
    void (*init)(torch::Library&),
    const char* file,
    uint32_t line);

}  // namespace normopt::util::detail

#define NORMOPT_LIBRARY_BLOCK_(kind, key, m, uid)                           \
  static void C10_CONCATENATE(normopt_library_init_, uid)(torch::Library&); \
  static const auto C10_CONCATENATE(normopt_library_, uid) =                \
      ::normopt::util::detail::make_library(                                \
          torch::Library::kind,                                             \
          key,                                                              \
          &C10_CONCATENATE(normopt_library_init_, uid),                     \
          __FILE__,                                                         \
          __LINE__);                                                        \
  void C10_CONCATENATE(normopt_library_init_, uid)(torch::Library & m)

/// The one block that defines the schemas of the namespace.
#define NORMOPT_LIBRARY(m) NORMOPT_LIBRARY_BLOCK_(DEF, std::nullopt, m, C10_UID)
/// More definitions (custom classes).
#define NORMOPT_LIBRARY_FRAGMENT(m) \
  NORMOPT_LIBRARY_BLOCK_(FRAGMENT, std::nullopt, m, C10_UID)
/// Kernels for one dispatch key.
#define NORMOPT_LIBRARY_IMPL(k, m) \
  NORMOPT_LIBRARY_BLOCK_(IMPL, c10::DispatchKey::k, m, C10_UID)
