// The CSV reader's number parsing (csv::parse_number: whole numbers
// directly, the rest by fast_float) against std::from_chars and fast_float
// alone, on 100,000 fields of each kind a data file holds. All three are correctly
// rounded; the benchmark also checks that they agree bit for bit.
//   build/benchmarks/bench_numbers --benchmark_repetitions=5
#include "data/csv/scanner.h"

#include <benchmark/benchmark.h>

#include <fast_float/fast_float.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

using normopt::data::csv::Field;

// Fields of one kind, written with the given printf format from a seeded
// sequence of values.
struct Fields {
  std::string text;
  std::vector<Field> fields;
};

Fields make_fields(int kind) {
  Fields f;
  std::vector<std::pair<size_t, size_t>> spans;
  uint64_t state = 42;
  char buf[64];
  for (int i = 0; i < 100000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(state >> 11) * 0x1p-53;
    int n = 0;
    switch (kind) {
      case 0:  // whole dollars, as the income data
        n = std::snprintf(buf, sizeof buf, "%d", 20000 + int(u * 60000));
        break;
      case 1:  // a measurement with 4 decimals
        n = std::snprintf(buf, sizeof buf, "%.4f", 100 * u - 50);
        break;
      case 2:  // float64 written back in full (17 significant digits)
        n = std::snprintf(buf, sizeof buf, "%.17g", u * 1e3);
        break;
      default:  // scientific, wide exponents (outside Clinger's range)
        n = std::snprintf(
            buf, sizeof buf, "%.9e", u * std::pow(10.0, 60 * u - 30));
    }
    spans.emplace_back(f.text.size(), static_cast<size_t>(n));
    f.text.append(buf, static_cast<size_t>(n));
  }
  for (const auto& [at, size] : spans) {
    f.fields.push_back(Field{f.text.data() + at, size, 1, false});
  }
  return f;
}

const char* kKinds[] = {"income", "4decimals", "17digits", "scientific"};

template <typename Parse>
void run(benchmark::State& state, Parse parse) {
  const auto f = make_fields(static_cast<int>(state.range(0)));
  state.SetLabel(kKinds[state.range(0)]);
  for (auto _ : state) {
    double sum = 0;
    for (const auto& field : f.fields) {
      double v = 0;
      parse(field, v);
      sum += v;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() *
                          static_cast<int64_t>(f.fields.size()));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(f.text.size()));
}

void BM_Parse_normopt(benchmark::State& state) {
  run(state, [](const Field& f, double& v) {
    normopt::data::csv::parse_number(f, v);
  });
}

void BM_Parse_from_chars(benchmark::State& state) {
  run(state, [](const Field& f, double& v) {
    std::from_chars(f.begin, f.begin + f.size, v);
  });
}

void BM_Parse_fast_float(benchmark::State& state) {
  run(state, [](const Field& f, double& v) {
    fast_float::from_chars(f.begin, f.begin + f.size, v);
  });
}

// Aborts unless the three parsers give the same double for every field.
void check_agreement() {
  for (int kind = 0; kind < 4; ++kind) {
    const auto f = make_fields(kind);
    for (const auto& field : f.fields) {
      double a = 0, b = 0;
      normopt::data::csv::parse_number(field, a);
      std::from_chars(field.begin, field.begin + field.size, b);
      double c = 0;
      fast_float::from_chars(field.begin, field.begin + field.size, c);
      const bool same = std::memcmp(&a, &b, sizeof a) == 0 &&
                        std::memcmp(&a, &c, sizeof a) == 0;
      if (!same) {
        std::fprintf(stderr,
                     "bench_numbers: parsers disagree on '%.*s'\n",
                     static_cast<int>(field.size),
                     field.begin);
        std::exit(1);
      }
    }
  }
}

}  // namespace

BENCHMARK(BM_Parse_normopt)->DenseRange(0, 3);
BENCHMARK(BM_Parse_from_chars)->DenseRange(0, 3);
BENCHMARK(BM_Parse_fast_float)->DenseRange(0, 3);

int main(int argc, char** argv) {
  check_agreement();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
