// normopt's guarded registration (see library.h).
#include "library.h"

#include <c10/util/Exception.h>

#include <string>

#if defined(__linux__) && defined(__GLIBC__)
#define NORMOPT_LIST_LOADED_OBJECTS 1
#include <dlfcn.h>
#include <link.h>
#endif

// The address any copy of libnormopt exports under this name identifies the
// copy; the guard uses it to name the copy loaded first.
extern "C" __attribute__((visibility("default")))
const char normopt_library_marker[] = "normopt";

namespace {

#if NORMOPT_LIST_LOADED_OBJECTS

std::string object_path(const void* address) {
  Dl_info info{};
  if (dladdr(address, &info) != 0 && info.dli_fname != nullptr) {
    return info.dli_fname;
  }
  return "";
}

// The file of another loaded object exporting normopt_library_marker, or "".
std::string other_copy_path() {
  struct Search {
    const void* own;
    std::string found;
  } search{static_cast<const void*>(normopt_library_marker), ""};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') {
          return 0;
        }
        void* handle = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
        if (handle == nullptr) {
          return 0;
        }
        const void* marker = dlsym(handle, "normopt_library_marker");
        dlclose(handle);
        if (marker != nullptr && marker != s->own) {
          s->found = object_path(marker);
          return 1;
        }
        return 0;
      },
      &search);
  return search.found;
}

#endif

}  // namespace

namespace normopt::util::detail {

bool is_primary_copy() {
  static const bool primary = [] {
#if NORMOPT_LIST_LOADED_OBJECTS
    const std::string first = other_copy_path();
    if (!first.empty()) {
      TORCH_WARN(
          "normopt: not registering this copy of the library (",
          object_path(static_cast<const void*>(normopt_library_marker)),
          "): normopt's ops and classes are already registered by ",
          first,
          ", which keeps serving torch.ops.normopt and "
          "torch.classes.normopt. Load one libnormopt per process (loading "
          "the same path again is fine).");
      return false;
    }
#endif
    return true;
  }();
  return primary;
}

std::unique_ptr<torch::Library> make_library(
    torch::Library::Kind kind,
    std::optional<c10::DispatchKey> key,
    void (*init)(torch::Library&),
    const char* file,
    uint32_t line) {
  if (!is_primary_copy()) {
    return nullptr;
  }
  auto library =
      std::make_unique<torch::Library>(kind, "normopt", key, file, line);
  init(*library);
  return library;
}

}  // namespace normopt::util::detail
