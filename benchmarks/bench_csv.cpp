// Reading speed of normopt's CSV reader on one numeric file: the whole file
// with data::read_csv, or (--stream ROWS) chunk by chunk with
// data::CsvReader, R times in one process; prints one line of JSON.
//
//   bench_csv FILE [--threads N] [--float64] [--repeat R] [--stream ROWS]
//
//   {"reader":"normopt","threads":1,"dtype":"float32","stream_rows":0,
//    "rows":1000000,"features":10,"bytes":93000000,"best_s":0.41,
//    "median_s":0.42,"peak_rss_mb":140.2,"base_rss_mb":60.3}
//
// rows and features are those of the tensors read (the target column, the
// last one, is not a feature); bytes is the file size; best_s and median_s
// are over the R reads; peak_rss_mb is the process's peak resident set
// (getrusage ru_maxrss), with one table alive at a time, and base_rss_mb
// the same before the first read (LibTorch loaded). stream_rows is 0 for
// whole-file reads.
//
// Run: benchmarks/csv_readers.py (generates the file, runs this in fresh
// processes next to pandas and pyarrow, prints a table).
#include <ATen/Parallel.h>
#include <normopt/data/csv.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <normopt/data/csv_reader.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string file;
  int threads = 1;
  bool float64 = false;
  int repeat = 3;
  int64_t stream_rows = 0;  // 0: whole file with read_csv
};

// Parses the command line (CLI11). Returns nullopt after printing --help or
// a parse error (the exit code in *code).
std::optional<Args> parse_args(int argc, char** argv, int* code) {
  Args a;
  CLI::App app{
      "Reads the numeric CSV FILE (header row, last column the "
      "target) R times and prints one line of JSON: rows, "
      "features, bytes, best_s, median_s, peak_rss_mb.",
      "bench_csv"};
  app.add_option("file", a.file, "the CSV file")->required()->type_name("FILE");
  app.add_option("--threads", a.threads, "at::set_num_threads(N)")
      ->type_name("N")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_flag("--float64", a.float64, "read as float64 (default float32)");
  app.add_option("--repeat", a.repeat, "number of reads")
      ->type_name("R")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--stream",
                 a.stream_rows,
                 "read with data::CsvReader in chunks of ROWS rows instead "
                 "of data::read_csv")
      ->type_name("ROWS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *code = app.exit(e);  // --help on stdout, errors on stderr
    return std::nullopt;
  }
  return a;
}

// The process's peak resident set so far, in MiB (ru_maxrss is in KiB).
double peak_rss_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

struct Read {
  int64_t rows = 0;
  int64_t features = 0;
};

Read read_whole(const std::string& file,
                const normopt::data::CsvOptions& options) {
  const auto table = normopt::data::read_csv(file, options);
  return {table.size(), table.features.size(1)};
}

Read read_stream(const std::string& file,
                 const normopt::data::CsvOptions& options,
                 int64_t chunk_rows) {
  Read read;
  normopt::data::CsvReader reader(file, options, chunk_rows);
  while (auto t = reader.next()) {
    read.rows += t->size();
    read.features = t->features.size(1);
  }
  return read;
}

}  // namespace

int main(int argc, char** argv) {
  int code = 0;
  const auto parsed = parse_args(argc, argv, &code);
  if (!parsed) {
    return code;
  }
  const Args& args = *parsed;
  struct stat st {};
  if (::stat(args.file.c_str(), &st) != 0) {
    std::fprintf(stderr,
                 "bench_csv: cannot stat '%s': %s\n",
                 args.file.c_str(),
                 std::strerror(errno));
    return 1;
  }
  at::set_num_threads(args.threads);
  const auto options = normopt::data::CsvOptions().dtype(
      args.float64 ? at::kDouble : at::kFloat);

  const double base_rss_mb = peak_rss_mb();
  std::vector<double> seconds;
  Read read;
  try {
    for (int r = 0; r < args.repeat; ++r) {
      const auto start = std::chrono::steady_clock::now();
      read = args.stream_rows > 0
                 ? read_stream(args.file, options, args.stream_rows)
                 : read_whole(args.file, options);
      seconds.push_back(std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - start)
                            .count());
    }
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench_csv: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_csv: %s\n", e.what());
    return 1;
  }

  std::sort(seconds.begin(), seconds.end());
  const size_t n = seconds.size();
  const double median =
      n % 2 == 1 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
  std::printf(
      "{\"reader\":\"normopt\",\"threads\":%d,\"dtype\":\"%s\","
      "\"stream_rows\":%lld,\"rows\":%lld,\"features\":%lld,\"bytes\":%lld,"
      "\"best_s\":%.6f,\"median_s\":%.6f,\"peak_rss_mb\":%.1f,"
      "\"base_rss_mb\":%.1f}\n",
      args.threads,
      args.float64 ? "float64" : "float32",
      static_cast<long long>(args.stream_rows),
      static_cast<long long>(read.rows),
      static_cast<long long>(read.features),
      static_cast<long long>(st.st_size),
      seconds.front(),
      median,
      peak_rss_mb(),
      base_rss_mb);
  return 0;
}
