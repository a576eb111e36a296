// The CSV reader at scale: rows parsed in blocks on several threads, the
// streaming CsvReader, and statistics fed from a stream. Each is checked
// against the serial whole-file parse (read_csv / parse_csv), which
// test_csv.cpp checks against hand-written values.

#include "../common.h"
#include "read_stream.h"

#include <normopt/data/csv.h>
#include <normopt/data/csv_reader.h>
#include <normopt/nn/linear_regressor.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/nn/target_standardizer.h>

#include "data/csv/parts.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace normopt::data;
using normopt::test::error_of;

// A CSV text with every feature of the format the reader accepts: a quoted
// header name with a line break inside, quoted cells (some spanning lines,
// some with "" escapes) in an unparsed text column, CRLF and LF endings,
// blank lines, spaces around fields, and numbers in several syntaxes.
std::string varied_csv(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> value(-1e4, 1e4);
  std::string text = "a,\"note\nwith a line break\",b,y\r\n";
  char cell[64];
  for (int64_t i = 0; i < rows; ++i) {
    const uint32_t r = rng();
    std::snprintf(cell, sizeof(cell), "%.6g", value(rng));
    text += cell;
    switch (r % 5) {
      case 0:
        text += ",\"multi\nline \"\"note\"\"\r\nhere\",";
        break;
      case 1:
        text += ", plain ,";
        break;
      case 2:
        text += ",\"a,b\",";
        break;
      default:
        text += ",,";
    }
    std::snprintf(cell, sizeof(cell), "%+.3e", value(rng));
    text += cell;
    text += ",";
    text += std::to_string(static_cast<int64_t>(r % 1000) - 500);
    text += (r % 3 == 0) ? "\r\n" : "\n";
    if (r % 97 == 0) {
      text += "\n";  // a blank line
    }
  }
  return text;
}

// varied_csv's numeric columns (its "note" column holds text).
CsvOptions varied_options() {
  return CsvOptions().target("y").features({"a", "b"});
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return path;
}

// Every row of the stream, concatenated.
Table read_all(CsvReader& reader, std::vector<int64_t>* part_rows = nullptr) {
  return normopt::test::read_stream(reader, [&](const Table& part) {
    if (part_rows != nullptr) {
      part_rows->push_back(part.size());
    }
  });
}

void expect_same_table(const Table& a, const Table& b) {
  ASSERT_EQ(a.features.sizes(), b.features.sizes());
  EXPECT_EQ(a.features.scalar_type(), b.features.scalar_type());
  EXPECT_TRUE(at::equal(a.features, b.features));
  EXPECT_TRUE(at::equal(a.targets, b.targets));
  EXPECT_EQ(a.feature_names, b.feature_names);
  EXPECT_EQ(a.target_name, b.target_name);
}

// The line an error message names ("... at line L, ...").
int64_t error_line(const std::string& message) {
  const size_t at = message.find(" at line ");
  return at == std::string::npos ? -1 : std::stoll(message.substr(at + 9));
}

// Malformed variants of varied_csv: an error late in the file, of each kind
// the row parser reports, and the file's serial message for it.
std::vector<std::string> late_errors(const std::string& good) {
  const size_t late = good.size() * 9 / 10;
  const size_t row = good.find('\n', late) + 1;  // a record start
  auto with = [&](const std::string& inserted) {
    return good.substr(0, row) + inserted + good.substr(row);
  };
  return {
      with("1,x,2\n"),                  // ragged
      with("1,x,2,oops\n"),             // not a number
      with("1,x,,3\n"),                 // empty cell
      with("1,x,inf,3\n"),              // non-finite
      with("1,x,2,3,4\n"),              // too many fields
      with("1,\"x\"z,2,3\n"),           // text after a closing quote
      good + "1,\"never closed,2,3\n",  // unterminated quote
  };
}

class CsvBlocks : public ::testing::Test {
 protected:
  void TearDown() override {
    normopt::data::csv::set_block_parsing_for_testing(0, 0);
    at::set_num_threads(threads_);
  }
  int threads_ = at::get_num_threads();
};

// Blocks start at record starts: never inside a quoted field, even one
// spanning lines, and the pieces cover the text.
TEST_F(CsvBlocks, StartsAreRecordStarts) {
  const std::string text = "1,\"a\nb\nc\nd\",2\n3,\"e\nf\",4\n5,6,7\n";
  const auto starts = normopt::data::csv::block_starts(text, 8);
  ASSERT_EQ(starts.size(), 9u);
  EXPECT_EQ(starts.front(), 0u);
  EXPECT_EQ(starts.back(), text.size());
  const std::vector<size_t> records = {
      0, text.find("3,"), text.find("5,"), text.size()};
  for (size_t k = 0; k + 1 < starts.size(); ++k) {
    EXPECT_LE(starts[k], starts[k + 1]);
    EXPECT_NE(std::find(records.begin(), records.end(), starts[k]),
              records.end())
        << "block " << k << " starts at byte " << starts[k];
  }
}

// 4 threads give exactly the table of 1 thread, and took the block path.
TEST_F(CsvBlocks, SameTableAsOneThread) {
  const std::string text = varied_csv(40000, 1);  // ~1.6 MB: blocks by default
  ASSERT_GT(text.size(), size_t{1} << 20);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    const auto options =
        CsvOptions().target("y").features({"b", "a"}).dtype(dtype);
    at::set_num_threads(1);
    const int64_t before = normopt::data::csv::reads_in_blocks();
    const Table serial = parse_csv(text, options);
    EXPECT_EQ(normopt::data::csv::reads_in_blocks(), before);
    at::set_num_threads(4);
    const Table blocks = parse_csv(text, options);
    EXPECT_EQ(normopt::data::csv::reads_in_blocks(), before + 1);
    expect_same_table(blocks, serial);
    EXPECT_EQ(serial.size(), 40000);
  }
}

// Every error, in any block, gives the serial parse's message (its line and
// column), and a forced split into 1 to 9 blocks of a small text agrees too.
TEST_F(CsvBlocks, ErrorsAreTheSerialOnes) {
  const std::string good = varied_csv(3000, 2);
  for (const auto& bad : late_errors(good)) {
    at::set_num_threads(1);
    const std::string serial =
        error_of([&] { parse_csv(bad, varied_options()); });
    ASSERT_NE(serial, "");
    EXPECT_GT(error_line(serial), 2500) << serial;
    for (size_t blocks : {2, 3, 9}) {
      normopt::data::csv::set_block_parsing_for_testing(1, blocks);
      at::set_num_threads(4);
      EXPECT_EQ(error_of([&] { parse_csv(bad, varied_options()); }), serial);
    }
    normopt::data::csv::set_block_parsing_for_testing(0, 0);
  }
  for (size_t blocks = 1; blocks <= 9; ++blocks) {
    normopt::data::csv::set_block_parsing_for_testing(1, blocks);
    expect_same_table(
        parse_csv(good, CsvOptions().target("y").features({"a"})), [&] {
          normopt::data::csv::set_block_parsing_for_testing(0, 0);
          at::set_num_threads(1);
          return parse_csv(good, CsvOptions().target("y").features({"a"}));
        }());
    at::set_num_threads(4);
  }
}

// read_csv parses byte ranges of the file in parallel: on 4 threads (and in
// 2 to 9 forced ranges) the table of 1 thread, and every error the serial
// one, with its line.
TEST_F(CsvBlocks, ReadCsvRangesAreTheSerialRead) {
  normopt::test::TempDir dir;
  const std::string good = varied_csv(40000, 6);
  const std::string path = write_file(dir.file("good.csv"), good);
  at::set_num_threads(1);
  const Table serial = read_csv(path, varied_options());
  at::set_num_threads(4);
  const int64_t before = normopt::data::csv::reads_in_blocks();
  expect_same_table(read_csv(path, varied_options()), serial);
  EXPECT_EQ(normopt::data::csv::reads_in_blocks(), before + 1);
  for (size_t pieces : {2, 3, 9}) {
    normopt::data::csv::set_block_parsing_for_testing(1, pieces);
    expect_same_table(read_csv(path, varied_options()), serial);
  }
  for (const auto& bad : late_errors(varied_csv(3000, 7))) {
    const std::string bad_path = write_file(dir.file("bad.csv"), bad);
    normopt::data::csv::set_block_parsing_for_testing(0, 0);
    at::set_num_threads(1);
    const std::string expected =
        error_of([&] { read_csv(bad_path, varied_options()); });
    EXPECT_EQ(expected,
              error_of([&] { parse_csv(bad, varied_options(), bad_path); }));
    for (size_t pieces : {2, 9}) {
      normopt::data::csv::set_block_parsing_for_testing(1, pieces);
      EXPECT_EQ(error_of([&] { read_csv(bad_path, varied_options()); }),
                expected);
    }
  }
}

// More ranges than rows: the empty ones add nothing (found by the fuzzer:
// an empty part's values were copied from a null pointer, which UBSan
// reports).
TEST_F(CsvBlocks, MoreRangesThanRows) {
  normopt::test::TempDir dir;
  const std::string path =
      write_file(dir.file("tiny.csv"), "x,y\n1e308,4.9e-324\n-1.5,3.5e38\n");
  const auto options = CsvOptions().dtype(at::kDouble);
  at::set_num_threads(1);
  const Table serial = read_csv(path, options);
  for (size_t pieces : {2, 5, 9}) {
    normopt::data::csv::set_block_parsing_for_testing(1, pieces);
    expect_same_table(read_csv(path, options), serial);
    expect_same_table(
        parse_csv("x,y\n1e308,4.9e-324\n-1.5,3.5e38\n", options, path), serial);
  }
  EXPECT_EQ(serial.targets[0].item<double>(), 4.9e-324);
}

// --- CsvReader ---------------------------------------------------------------

class CsvStream : public ::testing::Test {
 protected:
  normopt::test::TempDir dir_;
};

// Every chunk and buffer size gives read_csv's rows, in parts of exactly
// chunk_rows rows (the last one fewer); buffers of a few bytes split CRLFs,
// quoted fields and numbers at every position.
TEST_F(CsvStream, SameRowsAsReadCsv) {
  const std::string path = write_file(dir_.file("v.csv"), varied_csv(2000, 3));
  const auto options = varied_options().dtype(at::kDouble);
  const Table whole = read_csv(path, options);
  for (int64_t chunk : {1, 7, 500, 5000}) {
    for (int64_t buffer :
         std::vector<int64_t>{1, 5, 64, 4096, int64_t{4} << 20}) {
      CsvReader reader(path, options, chunk, buffer);
      EXPECT_EQ(reader.feature_names(), whole.feature_names);
      EXPECT_EQ(reader.target_name(), "y");
      std::vector<int64_t> parts;
      const Table streamed = read_all(reader, &parts);
      expect_same_table(streamed, whole);
      EXPECT_EQ(reader.rows_read(), whole.size());
      for (size_t k = 0; k + 1 < parts.size(); ++k) {
        EXPECT_EQ(parts[k], chunk) << "chunk " << chunk << " buffer " << buffer;
      }
      EXPECT_FALSE(reader.next().has_value());  // stays at the end
    }
  }
}

// rewind() starts again at the first data row: a second epoch reads the
// same rows.
TEST_F(CsvStream, RewindReadsTheSameRowsAgain) {
  const std::string path = write_file(dir_.file("v.csv"), varied_csv(500, 4));
  CsvReader reader(path, varied_options(), 64, 256);
  const Table first = read_all(reader);
  reader.rewind();
  EXPECT_EQ(reader.rows_read(), 0);
  reader.next();  // part of an epoch, then rewind
  reader.rewind();
  expect_same_table(read_all(reader), first);
}

// Errors are read_csv's, with the same line and column, thrown by the next()
// that reaches them; after one the reader stays failed until rewind().
TEST_F(CsvStream, ErrorsAreReadCsvs) {
  for (const auto& bad : late_errors(varied_csv(1500, 5))) {
    const std::string path = write_file(dir_.file("bad.csv"), bad);
    const std::string expected =
        error_of([&] { read_csv(path, varied_options()); });
    ASSERT_NE(expected, "");
    EXPECT_GT(error_line(expected), 1300) << expected;
    for (int64_t buffer : std::vector<int64_t>{3, 1000, int64_t{4} << 20}) {
      CsvReader reader(path, varied_options(), 100, buffer);
      std::string got;
      try {
        while (reader.next()) {
        }
      } catch (const c10::Error& e) {
        got = e.what_without_backtrace();
      }
      EXPECT_EQ(got, expected) << "buffer " << buffer;
      EXPECT_EQ(error_of([&] { reader.next(); }), expected);
    }
  }
  // Header and column errors come from the constructor.
  const std::string empty = write_file(dir_.file("empty.csv"), "\n\n");
  EXPECT_EQ(error_of([&] { CsvReader reader(empty); }),
            error_of([&] { read_csv(empty); }));
  const std::string header_only = write_file(dir_.file("h.csv"), "a,y\r\n\n");
  CsvReader reader(header_only, CsvOptions(), 10, 2);
  EXPECT_EQ(error_of([&] { reader.next(); }),
            error_of([&] { read_csv(header_only); }));
  const std::string plain = write_file(dir_.file("p.csv"), "a,y\n1,2\n");
  EXPECT_EQ(error_of([&] { CsvReader r(plain, CsvOptions().target("z")); }),
            error_of([&] { read_csv(plain, CsvOptions().target("z")); }));
  EXPECT_NE(error_of([&] {
              CsvReader r(plain, CsvOptions(), 0);
            }).find("chunk_rows and buffer_bytes must be at least 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              CsvReader r(dir_.file("missing.csv"));
            }).find("cannot open"),
            std::string::npos);
}

#if defined(__linux__)
// VmHWM (peak resident memory) of this process in kB, after resetting it
// (writing 5 to /proc/self/clear_refs): -1 where Linux does not allow that.
int64_t reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.close();
  return clear.fail() ? -1 : 0;
}

// A kB field of /proc/self/status ("VmHWM:", the peak resident set;
// "VmRSS:", the current one); -1 where there is none.
int64_t status_kb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) {
      return std::stoll(line.substr(field.size()));
    }
  }
  return -1;
}

int64_t peak_rss_kb() {
  return status_kb("VmHWM:");
}

int64_t rss_kb() {
  return status_kb("VmRSS:");
}

// Streaming a 120 MB file in parts of 8192 rows with a 1 MiB buffer raises
// the peak resident memory by less than 32 MB; read_csv of the same file
// (which holds it whole) raises it by more than the file's size, which shows
// the measurement sees the memory it must.
TEST_F(CsvStream, PeakMemoryDoesNotGrowWithTheFile) {
  const std::string path = dir_.file("big.csv");
  {
    std::ofstream out(path, std::ios::binary);
    out << "x1,x2,x3,x4,x5,x6,x7,x8,x9,x10,y\n";
    std::string row;
    for (int64_t i = 0; i < 1'600'000; ++i) {
      row.clear();
      for (int c = 0; c < 11; ++c) {
        row += std::to_string((i * 7919 + c * 104729) % 1000003 - 500000);
        row += c == 10 ? '\n' : ',';
      }
      out << row;
    }
  }
  const int64_t file_kb = [&] {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    return static_cast<int64_t>(in.tellg()) / 1024;
  }();
  ASSERT_GT(file_kb, 100 * 1024);
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under AddressSanitizer freed memory waits in its "
                  "quarantine, so the peak RSS is not the reader's";
#endif
  if (reset_peak_rss() < 0 || peak_rss_kb() < 0) {
    GTEST_SKIP() << "/proc/self/clear_refs cannot reset the peak RSS here";
  }
  const int64_t base = rss_kb();
  int64_t rows = 0;
  {
    CsvReader reader(path, CsvOptions(), 8192, int64_t{1} << 20);
    while (auto part = reader.next()) {
      rows += part->size();
    }
  }
  const int64_t streamed_kb = peak_rss_kb() - base;
  EXPECT_EQ(rows, 1'600'000);
  EXPECT_LT(streamed_kb, 32 * 1024) << "file: " << file_kb << " kB";

  reset_peak_rss();
  const int64_t base2 = rss_kb();
  const int64_t whole_rows = read_csv(path).size();
  const int64_t whole_kb = peak_rss_kb() - base2;
  EXPECT_EQ(whole_rows, rows);
  EXPECT_GT(whole_kb, file_kb) << "the measurement missed read_csv's memory";
  std::cout << "[ peak RSS ] file " << file_kb / 1024 << " MB: streamed +"
            << streamed_kb / 1024 << " MB, read_csv +" << whole_kb / 1024
            << " MB\n";
}
#endif

// --- Statistics from a stream ------------------------------------------------

// Rows whose mean is far from zero relative to their spread (incomes), where
// a one-pass sum of squares would lose digits.
std::string income_like_csv(int64_t rows) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::string text = "age,experience,income\n";
  char line[128];
  for (int64_t i = 0; i < rows; ++i) {
    std::snprintf(line,
                  sizeof(line),
                  "%.17g,%.17g,%.17g\n",
                  40 + 10 * noise(rng),
                  1e6 + 3 * noise(rng),
                  45000 + 9000 * noise(rng));
    text += line;
  }
  return text;
}

// One pass over the stream gives the float64 statistics of the whole file:
// equal to a two-pass long-double reference to 1e-12 (relative), and to
// adapt()/fit() on the whole table.
TEST_F(CsvStream, StatisticsOfTheWholeFile) {
  const std::string path =
      write_file(dir_.file("i.csv"), income_like_csv(30011));
  const auto options = CsvOptions().dtype(at::kDouble);
  const Table whole = read_csv(path, options);
  const auto [mean_x, var_x] = normopt::test::reference_stats(whole.features);
  const auto [mean_y, var_y] = normopt::test::reference_stats(whole.targets);
  CsvReader reader(path, options, 1000, 4096);

  auto norm = normopt::nn::Normalization();
  norm->adapt(reader);
  EXPECT_LT(normopt::test::max_rel_error(norm->mean,
                                         normopt::test::as_tensor(mean_x)),
            1e-12);
  EXPECT_LT(normopt::test::max_rel_error(norm->variance,
                                         normopt::test::as_tensor(var_x)),
            1e-12);
  EXPECT_EQ(norm->count.item<int64_t>(), 30011);

  auto target = normopt::nn::TargetStandardizer();
  target->fit(reader);  // rewinds: the reader was at its end
  EXPECT_LT(normopt::test::max_rel_error(target->loc,
                                         normopt::test::as_tensor(mean_y)),
            1e-12);
  EXPECT_LT(normopt::test::max_rel_error(target->scale.square(),
                                         normopt::test::as_tensor(var_y)),
            1e-12);

  auto minmax = normopt::nn::TargetStandardizer(
      normopt::nn::TargetStandardizerOptions().method(
          normopt::nn::TargetScaling::kMinMax));
  minmax->fit(reader);
  auto reference = normopt::nn::TargetStandardizer(
      normopt::nn::TargetStandardizerOptions().method(
          normopt::nn::TargetScaling::kMinMax));
  reference->fit(whole.targets);
  EXPECT_TRUE(at::equal(minmax->loc, reference->loc));
  EXPECT_TRUE(at::equal(minmax->scale, reference->scale));
  EXPECT_TRUE(at::equal(minmax->loc, std::get<0>(whole.targets.min(0))));

  auto model =
      normopt::nn::StandardizedRegressor(normopt::nn::LinearRegressor(2));
  model->fit_statistics(reader);
  EXPECT_TRUE(at::allclose(model->normalization->mean, norm->mean, 0, 0));
  EXPECT_TRUE(at::allclose(model->target->loc, target->loc, 0, 0));
  EXPECT_TRUE(at::allclose(model->target->scale, target->scale, 0, 0));
}

// A stream that fails part way leaves the old statistics as they were.
TEST_F(CsvStream, AFailedStreamKeepsTheOldStatistics) {
  std::string text = income_like_csv(5000);
  text += "1,2,oops\n";
  const std::string path = write_file(dir_.file("bad.csv"), text);
  CsvReader reader(path, CsvOptions(), 100, 4096);
  auto model =
      normopt::nn::StandardizedRegressor(normopt::nn::LinearRegressor(2));
  const auto x = at::tensor({1.0, 2.0, 3.0, 5.0}).reshape({2, 2});
  const auto y = at::tensor({10.0, 30.0}).reshape({2, 1});
  model->fit_statistics(x, y);
  const auto mean = model->normalization->mean.clone();
  const auto loc = model->target->loc.clone();
  const std::string message = error_of([&] { model->fit_statistics(reader); });
  EXPECT_NE(message.find("line 5002, column 3"), std::string::npos) << message;
  EXPECT_TRUE(at::equal(model->normalization->mean, mean));
  EXPECT_TRUE(at::equal(model->target->loc, loc));
  auto norm = normopt::nn::Normalization();
  EXPECT_EQ(error_of([&] { norm->adapt(reader); }), message);
  EXPECT_FALSE(norm->is_adapted());
}

}  // namespace

namespace {

// The reader's number parsing (whole numbers directly, the rest by
// fast_float) gives std::from_chars's verdict (a number, not one,
// non-finite, out of range) and, for a number, its double bit for bit: random
// digits, signs, points and exponents, and the edges (15 and 16 digits, 2^53,
// 1e±22, overflow, underflow, subnormals, inf and nan, a leading '+').
TEST(CsvNumbers, ParseNumberEqualsFromChars) {
  std::mt19937_64 rng(99);
  std::vector<std::string> texts = {"0",
                                    "-0",
                                    "1.",
                                    ".5",
                                    "-.5",
                                    "9007199254740992",
                                    "9007199254740993",
                                    "1234567890123456789",
                                    "12345678901234567890",
                                    "1e22",
                                    "1e23",
                                    "1e-22",
                                    "1e-23",
                                    "4.9406564584124654e-324",
                                    "1.7976931348623157e308",
                                    "0.1",
                                    "0.3",
                                    "123.456e-7",
                                    "1E+5",
                                    "1e",
                                    "e5",
                                    "1e+",
                                    "--1",
                                    "1.2.3",
                                    "00000000000000000001",
                                    "0.000000000000000000001",
                                    "999999999999999",
                                    "-9999999999999999",
                                    "1e999",
                                    "-1e999",
                                    "1e-400",
                                    "0e-400",
                                    "-0.0e999",
                                    "2e-324",
                                    "inf",
                                    "-Infinity",
                                    "nan",
                                    "+1.5",
                                    "+-1",
                                    "+",
                                    "-",
                                    "0x10"};
  const char digits[] = "0123456789";
  for (int i = 0; i < 200000; ++i) {
    std::string t;
    if (rng() % 4 == 0) {
      t += '-';
    }
    const int before = static_cast<int>(rng() % 12);
    for (int d = 0; d < before; ++d) {
      t += digits[rng() % 10];
    }
    if (rng() % 2) {
      t += '.';
      const int after = static_cast<int>(rng() % 12);
      for (int d = 0; d < after; ++d) {
        t += digits[rng() % 10];
      }
    }
    if (rng() % 3 == 0) {
      t += (rng() % 2) ? 'e' : 'E';
      const auto sign = rng() % 3;
      t += sign == 0 ? "" : (sign == 1 ? "-" : "+");
      t += std::to_string(rng() % 40);
    }
    texts.push_back(t);
  }
  using normopt::data::csv::NumberStatus;
  int64_t numbers = 0;
  for (const auto& t : texts) {
    double got = 0.0;
    const NumberStatus status = normopt::data::csv::parse_number(
        normopt::data::csv::Field{t.data(), t.size(), 1, false}, got);
    // from_chars refuses a leading '+', which the reader takes once.
    const bool plus = !t.empty() && t[0] == '+';
    const char* b = t.data() + (plus ? 1 : 0);
    const char* e = t.data() + t.size();
    double want = 0.0;
    const auto [ptr, ec] = std::from_chars(b, e, want);
    NumberStatus expected = NumberStatus::kNotNumber;
    if (t.empty()) {
      expected = NumberStatus::kEmpty;
    } else if (ptr == e && !(plus && (b == e || *b == '-'))) {
      if (ec == std::errc::result_out_of_range) {
        expected = NumberStatus::kOutOfRange;
      } else if (ec == std::errc()) {
        expected =
            std::isfinite(want) ? NumberStatus::kOk : NumberStatus::kNonFinite;
      }
    }
    ASSERT_EQ(static_cast<int>(status), static_cast<int>(expected)) << t;
    if (status == NumberStatus::kOk) {
      ++numbers;
      ASSERT_EQ(std::memcmp(&got, &want, sizeof(double)), 0)
          << t << ": parse_number " << got << ", from_chars " << want;
    }
  }
  EXPECT_GT(numbers, 100000);
}

}  // namespace

// --- fit() from a stream -----------------------------------------------------

#include <normopt/optim/adam.h>
#include <normopt/train/fit.h>

namespace {

class FitStream : public ::testing::Test {
 protected:
  // 3,001 income-like rows in a file, and the same rows as a Table.
  void SetUp() override {
    path_ = write_file(dir_.file("i.csv"), income_like_csv(3001));
    table_ = read_csv(path_, CsvOptions().dtype(at::kDouble));
  }

  // With `prefit`, the model's statistics come from the whole table first
  // (else fit() computes them: from the stream, merged part by part, they
  // differ from the table's in the last bits).
  normopt::train::History run(normopt::data::TableStream* stream,
                              normopt::train::FitOptions options,
                              bool prefit = false) {
    torch::manual_seed(3);
    auto model =
        normopt::nn::StandardizedRegressor(normopt::nn::LinearRegressor(2));
    model->to(model_dtype_);
    if (prefit) {
      model->fit_statistics(table_.features, table_.targets);
    }
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-2));
    options.epochs(4).progress(normopt::train::Progress::kOff);
    auto history = stream ? normopt::train::fit(model, adam, *stream, options)
                          : normopt::train::fit(model, adam, table_, options);
    weights_.push_back(model->parameters()[0].detach().clone());
    return history;
  }

  normopt::test::TempDir dir_;
  std::string path_;
  Table table_;
  at::ScalarType model_dtype_ = at::kDouble;
  std::vector<at::Tensor> weights_;
};

// A shuffle buffer of at least N rows gives fit(Table)'s run: the same
// batches (so, with the same statistics, the same parameters bit for bit)
// and the same History (the losses summed part by part: 1e-12).
TEST_F(FitStream, BufferOfAllRowsEqualsTheTable) {
  for (bool shuffle : {true, false}) {
    weights_.clear();
    const auto options =
        normopt::train::FitOptions().batch_size(64).shuffle(shuffle).seed(5);
    const auto whole = run(nullptr, options, /*prefit=*/true);
    CsvReader reader(path_, CsvOptions().dtype(at::kDouble), 500, 4096);
    const auto streamed = run(&reader, options, /*prefit=*/true);
    ASSERT_EQ(streamed.epochs.size(), whole.epochs.size());
    EXPECT_TRUE(at::equal(weights_[0], weights_[1]));
    for (size_t e = 0; e < whole.epochs.size(); ++e) {
      EXPECT_NEAR(streamed.epochs[e].train_loss,
                  whole.epochs[e].train_loss,
                  1e-12 * whole.epochs[e].train_loss);
      EXPECT_NEAR(streamed.epochs[e].train_mse,
                  whole.epochs[e].train_mse,
                  1e-12 * whole.epochs[e].train_mse);
    }
  }
}

// The same with the data and the model in float32 or float64 (the shuffle
// buffer is filled by normalize_into/standardize_targets_into: the values
// of the table's prepared rows, bit for bit).
TEST_F(FitStream, BufferOfAllRowsEqualsTheTable_EveryDtypePair) {
  // Values with every float64 digit, so that rounding to float32 shows.
  std::string csv = "a,b,y\n";
  for (int i = 0; i < 3001; ++i) {
    char line[96];
    const double a = 0.1 * i, b = (i % 7) / 3.0;
    std::snprintf(
        line, sizeof line, "%.17g,%.17g,%.17g\n", a, b, 2.5 * a - b + 0.01);
    csv += line;
  }
  path_ = write_file(dir_.file("fractions.csv"), csv);
  for (auto [data, model] : {std::pair{at::kFloat, at::kFloat},
                             std::pair{at::kFloat, at::kDouble},
                             std::pair{at::kDouble, at::kFloat}}) {
    weights_.clear();
    model_dtype_ = model;
    table_ = read_csv(path_, CsvOptions().dtype(data));
    const auto options = normopt::train::FitOptions().batch_size(64).seed(5);
    run(nullptr, options, /*prefit=*/true);
    CsvReader reader(path_, CsvOptions().dtype(data), 500, 4096);
    run(&reader, options, /*prefit=*/true);
    EXPECT_TRUE(at::equal(weights_[0], weights_[1]))
        << "data " << data << ", model " << model;
  }
}

// A buffer smaller than the data still visits every row once per epoch, in
// an order that depends on the seed; the run converges like the whole one.
TEST_F(FitStream, SmallBufferVisitsEveryRowOnce) {
  CsvReader reader(path_, CsvOptions().dtype(at::kDouble), 100, 4096);
  struct RowCounter : normopt::train::Callback {
    int64_t rows = 0;
    void before_step(normopt::train::FitState&, int64_t batch_rows) override {
      rows += batch_rows;
    }
  };
  auto counter = std::make_shared<RowCounter>();
  const int64_t& rows = counter->rows;
  const auto options =
      normopt::train::FitOptions().batch_size(64).shuffle_buffer(700).callbacks(
          {counter});
  const auto history = run(&reader, options);
  EXPECT_EQ(rows, 4 * 3001);
  const auto whole =
      run(nullptr, normopt::train::FitOptions().batch_size(64).seed(0));
  EXPECT_LT(std::abs(history.epochs.back().train_loss -
                     whole.epochs.back().train_loss),
            0.05 * whole.epochs.back().train_loss);
  EXPECT_NE(error_of([&] {
              run(&reader, normopt::train::FitOptions().batch_size(0));
            }).find("training from a stream needs batch_size >= 1"),
            std::string::npos);
}

}  // namespace
