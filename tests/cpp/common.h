#pragma once
// Shared test helpers: independent references and error assertions.

#include <gtest/gtest.h>
#include <normopt/train/fit.h>
#include <torch/torch.h>

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/resource.h>

#include <csignal>
#endif

namespace normopt::test {

/// Per-column mean and population variance of a 2-D tensor, two passes in
/// long double over a plain copy: independent of ATen's reductions.
inline std::pair<std::vector<double>, std::vector<double>> reference_stats(
    const torch::Tensor& x2d) {
  auto x = x2d.to(torch::kFloat64).contiguous();
  const int64_t n = x.size(0), f = x.size(1);
  const double* p = x.data_ptr<double>();
  std::vector<double> mean(f), var(f);
  for (int64_t j = 0; j < f; ++j) {
    long double s = 0;
    for (int64_t i = 0; i < n; ++i)
      s += p[i * f + j];
    const long double m = s / n;
    long double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      const long double d = p[i * f + j] - m;
      ss += d * d;
    }
    mean[j] = static_cast<double>(m);
    var[j] = static_cast<double>(ss / n);
  }
  return {mean, var};
}

/// Largest |a - b| / max(|b|, tiny) over two tensors.
inline double max_rel_error(const torch::Tensor& a, const torch::Tensor& b) {
  auto ad = a.to(torch::kFloat64).cpu(), bd = b.to(torch::kFloat64).cpu();
  return ((ad - bd).abs() / bd.abs().clamp_min(1e-300)).max().item<double>();
}

inline torch::Tensor as_tensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::kFloat64);
}

/// The message of the c10::Error that `fn` throws ("" and a test failure
/// when it throws nothing, or something else).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a c10::Error, got std::exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected a c10::Error, nothing was thrown";
  return "";
}

/// Runs `fn`, expects a c10::Error whose message contains every needle.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> needles) {
  const std::string msg = error_of(std::forward<Fn>(fn));
  for (const auto& needle : needles) {
    EXPECT_NE(msg.find(needle), std::string::npos)
        << "message lacks '" << needle << "':\n"
        << msg;
  }
}

/// fit() options without a progress bar (tests print nothing).
inline normopt::train::FitOptions quiet() {
  return normopt::train::FitOptions().progress(normopt::train::Progress::kOff);
}

/// Copies of a module's parameters, then its buffers.
inline std::vector<torch::Tensor> snapshot(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) {
    out.push_back(p.detach().clone());
  }
  for (const auto& b : m.buffers()) {
    out.push_back(b.detach().clone());
  }
  return out;
}

// No std::filesystem in the tests either (see csrc/util/files.h: the
// PyTorch wheels export a copy of it that crashes with torch 2.11+cu130):
// these few helpers call POSIX.

/// Whether something exists at `path`.
inline bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

/// Removes `path` and, for a folder, everything in it (errors ignored).
inline void remove_tree(const std::string& path) {
  ::nftw(
      path.c_str(),
      [](const char* entry, const struct stat*, int, struct FTW*) {
        std::remove(entry);
        return 0;
      },
      16,
      FTW_DEPTH | FTW_PHYS);
}

/// A fresh temporary directory, removed by the destructor.
struct TempDir {
  std::string path;
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") +
                          "/normopt_test_" + std::to_string(::getpid()) +
                          "_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "cannot create a temporary folder " << pattern << ": "
                    << std::strerror(errno);
    }
    path = pattern;
  }
  ~TempDir() {
    remove_tree(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const {
    return path + "/" + name;
  }
};

/// The names of the entries in `folder`, sorted: what a write left there
/// (e.g. no temporary file beside the one it replaced).
inline std::vector<std::string> files_in(const std::string& folder) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(folder.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") {
        names.push_back(name);
      }
    }
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

#if defined(__linux__)
/// While alive, writing a file past `bytes` fails with EFBIG (the file-size
/// resource limit; SIGXFSZ ignored), as a full disk fails with ENOSPC. It
/// works as root, where permissions cannot make a write fail.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit_), 0);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit_;
    small.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_limit_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  struct rlimit old_limit_ {};
  void (*old_handler_)(int) = nullptr;
};
#endif

#define NORMOPT_SKIP_WITHOUT_CUDA()                      \
  if (!torch::cuda::is_available()) {                    \
    GTEST_SKIP() << "no CUDA device: CUDA test skipped"; \
  }

/// Path of the seed data set, or "" (with the reason in *why) when
/// $NORMOPT_DATA_DIR is unset or lacks it.
inline std::string income_csv(std::string* why) {
  const char* dir = std::getenv("NORMOPT_DATA_DIR");
  if (!dir || !*dir) {
    *why =
        "NORMOPT_DATA_DIR is not set; point it at the folder holding "
        "multiple_linear_regression_dataset.csv to run this test";
    return "";
  }
  const std::string path =
      std::string(dir) + "/multiple_linear_regression_dataset.csv";
  if (!exists(path)) {
    *why = path + " does not exist; this test needs the income data";
    return "";
  }
  return path;
}

}  // namespace normopt::test
