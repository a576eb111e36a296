// normopt::deploy::Predictor's refusals. Packages are compiled in Python
// (normopt.export), so the round trip (C++ train -> Python package -> C++ and
// Python predictions equal) is tests/python/test_aoti.py's.
#include "../common.h"

#include <normopt/deploy/predictor.h>

#include <fstream>

namespace {

using normopt::deploy::Predictor;
using normopt::test::TempDir;

std::string error_of_loading(const std::string& path) {
  try {
    Predictor predictor(path);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(Predictor, MissingFile_NamesPathAndWhatToDo) {
  TempDir dir;
  const std::string path = dir.file("model.pt2");
  const std::string m = error_of_loading(path);
  EXPECT_NE(m.find("normopt::deploy::Predictor: no package at '" + path +
                   "' (no such file)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("python -m normopt.export"), std::string::npos) << m;
}

TEST(Predictor, Folder_IsNotAPackage) {
  TempDir dir;
  const std::string m = error_of_loading(dir.path);
  EXPECT_NE(m.find("(not a regular file)"), std::string::npos) << m;
}

TEST(Predictor, OtherFiles_RefusedInOneLine) {
  TempDir dir;
  // A TorchScript archive (what torch::save writes) and plain bytes.
  const std::string archive = dir.file("model.pt");
  auto module = torch::nn::Linear(2, 1);
  torch::save(module, archive);
  const std::string junk = dir.file("junk.pt2");
  std::ofstream(junk, std::ios::binary) << "not a zip";
  for (const auto& path : {archive, junk}) {
    const std::string m = error_of_loading(path);
    EXPECT_NE(m.find("'" + path + "' is not an AOTInductor package ("),
              std::string::npos)
        << m;
    EXPECT_EQ(m.find("The following files were found"), std::string::npos) << m;
  }
}

}  // namespace
