// libFuzzer target for the CSV reader, normopt::data::parse_csv.
//
// The contract under test (include/normopt/data/csv.h): on arbitrary bytes
// and any options, parse_csv either returns a well-formed Table or throws
// c10::Error. Everything else is a finding that libFuzzer reports as a crash:
//  - a sanitizer report (ASan: out-of-bounds, use-after-free, leak; UBSan);
//  - an exception of another type (it escapes LLVMFuzzerTestOneInput, and
//    std::terminate aborts);
//  - a hang (libFuzzer's -timeout);
//  - a returned Table that breaks the documented shape/dtype/name/finite
//    invariants, or a float32 result that is not the float64 result rounded
//    once (checked below; a violation prints why and aborts);
//  - a disagreement with the serial whole-text parse of: the rows parsed in
//    2 to 9 forced blocks, the streaming CsvReader (the input written to a
//    file, read with a buffer of 1 to 16 bytes and parts of 1 to 4 rows),
//    or read_csv of that file (windowed, and in 2 to 9 byte ranges):
//    the same Table, or the same error message; and the number parser
//    against std::from_chars on the input's first 40 bytes.
//
// Input layout: 4 option bytes, then the CSV text. The option bytes are
// chosen so that printable seeds stay readable: "0,00" selects the defaults.
//   byte 0, XOR '0' (0x30), is a set of flags:
//     bits 0-1  delimiter: ',' ';' '\t' '|'
//     bit  2    dtype: at::kFloat (0) or at::kDouble (1)
//     bits 3-4  column selection:
//               0  the defaults (last column is the target, the rest features)
//               1  target named by the next (byte 2 & 15) bytes of the input,
//                  which are taken off the front of the text
//               2  target = column (byte 2 % columns), features the default
//               3  as 2, plus a feature list picked by byte 3 (bits 0-5: take
//                  column i when bit i % 6 is set; bit 6: reverse the list;
//                  bit 7: name the first one twice)
//               (2 and 3 learn the column names from a parse with the
//               defaults first; when that throws, there is nothing more to do)
//     bit  5    cross-check: parse again with the other dtype; float32 must be
//               the float64 values rounded once, or fail on float32 overflow
//     bits 6-7  0 or 2: as above; 1: the delimiter is byte 1 itself (any byte,
//               the reserved '"', '\n', '\r' included, which must throw);
//               3: an unsupported dtype (at::kInt), which must throw
//   byte 1    the delimiter in mode bits 6-7 = 1
//   byte 2    target name length or target column, see bits 3-4
//   byte 3    feature selection, see bits 3-4
// Shorter inputs are parsed whole with the default options.

#include <normopt/data/csv.h>
#include <normopt/data/csv_reader.h>

#include "../cpp/data/read_stream.h"
#include "data/csv/parts.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace {

using normopt::data::CsvOptions;
using normopt::data::Table;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "csv_fuzzer: invariant broken: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) {
    fail(what);
  }
}

std::optional<Table> try_parse(std::string_view text,
                               const CsvOptions& options) {
  try {
    return normopt::data::parse_csv(text, options);
  } catch (const c10::Error&) {
    return std::nullopt;  // the documented way to reject an input
  }
}

// The documented shape of a successful parse (see Table and CsvOptions).
void check_table(const Table& t, const CsvOptions& options) {
  check(t.features.defined() && t.targets.defined(), "undefined tensor");
  check(t.features.dim() == 2 && t.targets.dim() == 2, "tensors not 2-D");
  const int64_t n = t.features.size(0);
  const int64_t f = t.features.size(1);
  check(n >= 1 && t.size() == n, "no rows, or size() disagrees");
  check(t.targets.size(0) == n && t.targets.size(1) == 1, "targets not (N, 1)");
  check(f >= 1 && static_cast<int64_t>(t.feature_names.size()) == f,
        "feature_names do not match the feature columns");
  for (const at::Tensor& x : {t.features, t.targets}) {
    check(x.scalar_type() == options.dtype(), "wrong dtype");
    check(x.device().is_cpu() && x.is_contiguous(), "not CPU contiguous");
    check(at::isfinite(x).all().item<bool>(), "non-finite value");
  }
  check(!t.target_name.empty(), "empty target name");
  for (const std::string& name : t.feature_names) {
    check(!name.empty() && name != t.target_name,
          "empty feature name, or a feature named like the target");
  }
  if (!options.target().empty()) {
    check(t.target_name == options.target(), "not the requested target");
  }
  if (!options.features().empty()) {
    check(t.feature_names == options.features(), "not the requested features");
  }
}

// float32 results are the float64 results rounded once; a file that parses
// as float64 fails as float32 only on float32 overflow.
void cross_check(std::string_view text,
                 const CsvOptions& options,
                 const Table& table) {
  CsvOptions other = options;
  other.dtype(options.dtype() == at::kFloat ? at::kDouble : at::kFloat);
  std::optional<Table> again;
  try {
    again = normopt::data::parse_csv(text, other);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    check(other.dtype() == at::kFloat &&
              msg.find("overflows float32") != std::string::npos,
          "float64/float32 disagree on whether the input is valid");
    return;
  }
  const Table& f32 = options.dtype() == at::kFloat ? table : *again;
  const Table& f64 = options.dtype() == at::kFloat ? *again : table;
  check(at::equal(f64.features.to(at::kFloat), f32.features) &&
            at::equal(f64.targets.to(at::kFloat), f32.targets),
        "float32 values are not the float64 values rounded once");
  check(f32.feature_names == f64.feature_names &&
            f32.target_name == f64.target_name,
        "float64/float32 disagree on the names");
}

// A parse's outcome: the Table, or the error message.
struct Outcome {
  std::optional<Table> table;
  std::string error;
};

Outcome outcome_of(const std::function<Table()>& parse) {
  Outcome o;
  try {
    o.table = parse();
  } catch (const c10::Error& e) {
    o.error = e.what_without_backtrace();
  }
  return o;
}

void check_same(const Outcome& a, const Outcome& b, const char* what) {
  check(a.table.has_value() == b.table.has_value(), what);
  if (!a.table) {
    if (a.error != b.error) {
      std::fprintf(
          stderr, "serial: %s\nother:  %s\n", a.error.c_str(), b.error.c_str());
    }
    check(a.error == b.error, what);
    return;
  }
  check(at::equal(a.table->features, b.table->features) &&
            at::equal(a.table->targets, b.table->targets) &&
            a.table->feature_names == b.table->feature_names &&
            a.table->target_name == b.table->target_name,
        what);
}

// The same text in blocks, and streamed from a file: the serial outcome.
void check_blocks_and_stream(std::string_view text,
                             const CsvOptions& options,
                             const Outcome& serial) {
  const size_t blocks = 2 + text.size() % 8;
  normopt::data::csv::set_block_parsing_for_testing(1, blocks);
  const Outcome in_blocks =
      outcome_of([&] { return normopt::data::parse_csv(text, options); });
  normopt::data::csv::set_block_parsing_for_testing(0, 0);
  check_same(serial, in_blocks, "blocks disagree with the serial parse");

  static const std::string path =
      "/tmp/normopt_csv_fuzzer_" + std::to_string(::getpid()) + ".csv";
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  } else {
    fail("cannot write the stream's temporary file");
  }
  const int64_t buffer = 1 + static_cast<int64_t>(text.size() % 16);
  const int64_t chunk = 1 + static_cast<int64_t>(text.size() / 16 % 4);
  const Outcome streamed = outcome_of([&] {
    normopt::data::CsvReader reader(path, options, chunk, buffer);
    return normopt::test::read_stream(reader, [&](const Table& part) {
      check(part.size() >= 1 && part.size() <= chunk, "part size");
    });
  });
  // The serial parse naming the same source as the stream.
  const Outcome expected =
      outcome_of([&] { return normopt::data::parse_csv(text, options, path); });
  check_same(expected, streamed, "CsvReader disagrees with the serial parse");
  // read_csv: the file in windows, and in 2 to 9 byte ranges.
  const Outcome whole =
      outcome_of([&] { return normopt::data::read_csv(path, options); });
  check_same(expected, whole, "read_csv disagrees with parse_csv");
  normopt::data::csv::set_block_parsing_for_testing(1, blocks);
  const Outcome ranges =
      outcome_of([&] { return normopt::data::read_csv(path, options); });
  normopt::data::csv::set_block_parsing_for_testing(0, 0);
  check_same(expected, ranges, "read_csv in byte ranges disagrees");
  // Not left in /tmp when the run ends (a failed check keeps it to look at).
  std::remove(path.c_str());
}

// The reader's number parsing (whole numbers directly, the rest by
// fast_float) against std::from_chars: the same status (a number, not a
// number, non-finite, out of range) and, for a number, the same double bit
// for bit.
void check_number(std::string_view text) {
  using normopt::data::csv::NumberStatus;
  if (text.empty()) {
    return;
  }
  double ours = 0.0;
  const NumberStatus status = normopt::data::csv::parse_number(
      normopt::data::csv::Field{text.data(), text.size(), 1, false}, ours);
  // The reference: from_chars after one leading '+' (which it refuses).
  std::string_view rest = text;
  bool refused = false;
  if (rest.front() == '+') {
    rest.remove_prefix(1);
    refused = rest.empty() || rest.front() == '+' || rest.front() == '-';
  }
  double theirs = 0.0;
  const auto [ptr, ec] =
      std::from_chars(rest.data(), rest.data() + rest.size(), theirs);
  const bool whole = ptr == rest.data() + rest.size();
  NumberStatus expected = NumberStatus::kNotNumber;
  if (!refused && whole && ec == std::errc::result_out_of_range) {
    expected = NumberStatus::kOutOfRange;
  } else if (!refused && whole && ec == std::errc()) {
    expected =
        std::isfinite(theirs) ? NumberStatus::kOk : NumberStatus::kNonFinite;
  }
  check(status == expected, "parse_number and from_chars disagree on kind");
  check(status != NumberStatus::kOk ||
            std::memcmp(&ours, &theirs, sizeof(double)) == 0,
        "parse_number and from_chars disagree on the value");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);  // one input at a time; no thread pool churn
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_number(text.substr(0, 40));
  CsvOptions options;
  if (size < 4) {
    if (auto t = try_parse(text, options)) {
      check_table(*t, options);
    }
    return 0;
  }
  const unsigned flags = data[0] ^ 0x30u;
  const uint8_t raw_delimiter = data[1];
  const uint8_t target_byte = data[2];
  const uint8_t feature_byte = data[3];
  text.remove_prefix(4);

  options.delimiter(",;\t|"[flags & 3u]);
  options.dtype((flags & 4u) ? at::kDouble : at::kFloat);
  const unsigned special = (flags >> 6) & 3u;
  if (special == 1) {
    options.delimiter(static_cast<char>(raw_delimiter));
  } else if (special == 3) {
    options.dtype(at::kInt);
    check(!try_parse(text, options).has_value(), "at::kInt accepted");
    return 0;
  }

  switch ((flags >> 3) & 3u) {
    case 0:
      break;
    case 1: {
      const size_t len = std::min<size_t>(target_byte & 15u, text.size());
      options.target(std::string(text.substr(0, len)));
      text.remove_prefix(len);
      break;
    }
    default: {
      const std::optional<Table> plain = try_parse(text, options);
      if (!plain) {
        return 0;
      }
      check_table(*plain, options);
      std::vector<std::string> names = plain->feature_names;
      names.push_back(plain->target_name);  // defaults: file order
      options.target(names[target_byte % names.size()]);
      if (((flags >> 3) & 3u) == 3) {
        std::vector<std::string> features;
        for (size_t i = 0; i < names.size(); ++i) {
          if (feature_byte & (1u << (i % 6))) {
            features.push_back(names[i]);
          }
        }
        if (feature_byte & 0x40u) {
          std::reverse(features.begin(), features.end());
        }
        if ((feature_byte & 0x80u) && !features.empty()) {
          features.push_back(features.front());
        }
        options.features(std::move(features));
      }
      break;
    }
  }

  const std::optional<Table> table = try_parse(text, options);
  if (table) {
    check_table(*table, options);
    if (flags & 0x20u) {
      cross_check(text, options, *table);
    }
  }
  check_blocks_and_stream(text, options, outcome_of([&] {
                            return normopt::data::parse_csv(text, options);
                          }));
  return 0;
}
