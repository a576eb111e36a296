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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

const char* const kUsage =
    "usage: bench_csv FILE [--threads N] [--float64] [--repeat R] "
    "[--stream ROWS]\n"
    "  reads the numeric CSV FILE (header row, last column the target) R "
    "times\n"
    "  and prints one line of JSON: rows, features, bytes, best_s, "
    "median_s,\n"
    "  peak_rss_mb.\n"
    "  --threads N     at::set_num_threads(N) (default 1)\n"
    "  --float64       read as float64 (default float32)\n"
    "  --repeat R      number of reads (default 3)\n"
    "  --stream ROWS   read with data::CsvReader in chunks of ROWS rows\n"
    "                  instead of data::read_csv\n";

struct Args {
  std::string file;
  int threads = 1;
  bool float64 = false;
  int repeat = 3;
  int64_t stream_rows = 0;  // 0: whole file with read_csv
};

// A whole decimal integer in [1, max], or -1.
int64_t parse_positive(const char* text, int64_t max) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 1 || value > max)
    return -1;
  return value;
}

// Fills `args` from argv; false (after printing why) on bad arguments.
bool parse_args(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&](int64_t max) -> int64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_csv: %s needs a value\n", arg.c_str());
        return -1;
      }
      const int64_t v = parse_positive(argv[++i], max);
      if (v < 0)
        std::fprintf(stderr,
                     "bench_csv: %s wants a whole number from 1 to %lld, "
                     "not '%s'\n",
                     arg.c_str(),
                     static_cast<long long>(max),
                     argv[i]);
      return v;
    };
    if (arg == "--threads") {
      const int64_t v = value(4096);
      if (v < 0)
        return false;
      args.threads = static_cast<int>(v);
    } else if (arg == "--repeat") {
      const int64_t v = value(1'000'000);
      if (v < 0)
        return false;
      args.repeat = static_cast<int>(v);
    } else if (arg == "--stream") {
      const int64_t v = value(INT64_C(1) << 40);
      if (v < 0)
        return false;
      args.stream_rows = v;
    } else if (arg == "--float64") {
      args.float64 = true;
    } else if (arg == "-h" || arg == "--help") {
      return false;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "bench_csv: unknown option '%s'\n", arg.c_str());
      return false;
    } else if (!args.file.empty()) {
      std::fprintf(stderr,
                   "bench_csv: one FILE only ('%s', then '%s')\n",
                   args.file.c_str(),
                   arg.c_str());
      return false;
    } else {
      args.file = arg;
    }
  }
  if (args.file.empty()) {
    std::fprintf(stderr, "bench_csv: no FILE given\n");
    return false;
  }
  return true;
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
  Args args;
  if (!parse_args(argc, argv, args)) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
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
