#include "fixtures.h"

#include <normopt/normopt.h>

#include <cstdio>
#include <limits>
#include <thread>

using namespace normopt::test::train;

// ---- History ----------------------------------------------------------------

namespace {

History small_history(const Table* validation = nullptr) {
  const auto table = income_like_table();
  torch::manual_seed(0);
  auto model = make_model();
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  return normopt::train::fit(
      model,
      adam,
      table,
      validation ? quiet().epochs(5).optimum_mse(1234.5).validation(*validation)
                 : quiet().epochs(5).optimum_mse(1234.5));
}

}  // namespace

TEST(FitHistory, WriteCsv_ExactHeaderRowsRoundTrip) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("history.csv");
  h.write_csv(path);
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line,
            "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds");
  size_t row = 0;
  while (std::getline(in, line)) {
    ASSERT_LT(row, h.epochs.size());
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) {
      cells.push_back(cell);
    }
    ASSERT_EQ(cells.size(), 7u) << line;
    const auto& e = h.epochs[row];
    EXPECT_EQ(std::stoll(cells[0]), e.epoch);
    EXPECT_EQ(std::stod(cells[1]), e.train_loss);
    EXPECT_EQ(std::stod(cells[2]), e.train_mse);
    EXPECT_EQ(cells[3], "nan");
    EXPECT_EQ(cells[4], "nan");
    EXPECT_EQ(std::stod(cells[5]), e.lr);
    EXPECT_EQ(std::stod(cells[6]), e.wall_seconds);
    ++row;
  }
  EXPECT_EQ(row, h.epochs.size());
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
}

TEST(FitHistory, WriteJson_HasKeysAndNulls) {
  normopt::test::TempDir dir;
  auto h = small_history();
  const auto path = dir.file("history.json");
  h.write_json(path, "adam \"raw\"");
  const auto text = read_text(path);
  for (const char* needle : {"\"run\": \"adam \\\"raw\\\"\"",
                             "\"optimum_mse\": 1234.5",
                             "\"stopped_early\": false",
                             "\"epochs\": [",
                             "\"epoch\": 5,",
                             "\"train_loss\": ",
                             "\"train_mse\": ",
                             "\"val_loss\": null",
                             "\"val_mse\": null",
                             "\"lr\": 0.01",
                             "\"wall_seconds\": "}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
  size_t count = 0;
  for (auto pos = text.find("\"epoch\":"); pos != std::string::npos;
       pos = text.find("\"epoch\":", pos + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 5u);
  h.optimum_mse.reset();
  h.write_json(path, "x");
  EXPECT_NE(read_text(path).find("\"optimum_mse\": null"), std::string::npos);
}

TEST(FitHistory, WriteToMissingFolder_ThrowsNamingPath) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("no_such_folder/history.csv");
  expect_error([&] { h.write_csv(path); }, {path, "No such file or directory"});
  expect_error([&] { h.write_json(path, "run"); },
               {path, "No such file or directory"});
}

TEST(FitHistory, ExistingFile_ReplacedWholeOrKept) {
  normopt::test::TempDir dir;
  const auto h = small_history();
  const auto path = dir.file("history.csv");
  { std::ofstream(path) << "old content\n"; }
  h.write_csv(path);
  const auto text = read_text(path);
  EXPECT_EQ(text.rfind("epoch,train_loss", 0), 0u);
  EXPECT_EQ(text.find("old content"), std::string::npos);
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
#if defined(__linux__)
  // When the new file cannot be written whole, the old file stays intact
  // and no temporary file is left.
  { std::ofstream(path) << "old content\n"; }
  {
    normopt::test::FileSizeLimit limit(16);
    expect_error([&] { h.write_csv(path); },
                 {path, "File too large", "was left as it was"});
  }
  EXPECT_EQ(read_text(path), "old content\n");
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
#endif
}

// Writers of one path never share a temporary file: each rename puts one
// writer's whole file in place. (With one shared "path.tmp", a writer's
// rename finds its file already renamed by another, or a mix of two.)
TEST(FitHistory, ConcurrentWriters_FileIsOneWholeVersion) {
  normopt::test::TempDir dir;
  const auto path = dir.file("history.csv");
  constexpr int kWriters = 4, kWrites = 25;
  std::vector<History> versions(kWriters);
  std::vector<std::string> texts(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    for (int e = 1; e <= 2000; ++e) {
      normopt::train::EpochLog log;
      log.epoch = e;
      log.train_loss = w;
      versions[w].epochs.push_back(log);
    }
    const auto own = dir.file("own" + std::to_string(w) + ".csv");
    versions[w].write_csv(own);
    texts[w] = read_text(own);
    std::remove(own.c_str());
  }
  std::vector<std::string> errors(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      try {
        for (int i = 0; i < kWrites; ++i) {
          versions[w].write_csv(path);
        }
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (const auto& error : errors) {
    EXPECT_EQ(error, "");
  }
  const auto text = read_text(path);
  EXPECT_NE(std::find(texts.begin(), texts.end(), text), texts.end())
      << "the file is no writer's whole version (" << text.size() << " bytes)";
  EXPECT_EQ(normopt::test::files_in(dir.path),
            std::vector<std::string>{"history.csv"});
}

TEST(FitHistory, Gaps_FromOptimum) {
  History h;
  EXPECT_TRUE(std::isnan(h.gap_to_optimum()));
  normopt::train::EpochLog e;
  e.train_mse = 110;
  h.epochs.push_back(e);
  EXPECT_TRUE(std::isnan(h.relative_gap()));
  h.optimum_mse = 100;
  EXPECT_DOUBLE_EQ(h.gap_to_optimum(), 10);
  EXPECT_NEAR(h.relative_gap(), 0.1, 1e-15);
}
