#include "parts.h"

#include <ATen/Parallel.h>
#include <c10/core/ScalarType.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <utility>

namespace normopt::data::csv {

namespace {

std::atomic<int64_t> g_reads_in_blocks{0};
std::atomic<size_t> g_min_bytes{size_t{1} << 20};
std::atomic<size_t> g_forced_blocks{0};

[[noreturn]] void throw_cell_error(const Scanner& scanner,
                                   const Field& f,
                                   size_t c,
                                   NumberStatus status) {
  const std::string text_of =
      quote(f.escaped ? unescape(std::string_view(f.begin, f.size))
                      : std::string(f.begin, f.size),
            40);
  TORCH_CHECK(status != NumberStatus::kEmpty,
              scanner.where(f.line, c),
              ": missing value (empty cell). Every target and feature cell "
              "must hold a number: fill it in or remove the row.");
  TORCH_CHECK(status != NumberStatus::kNonFinite,
              scanner.where(f.line, c),
              ": non-finite value ",
              text_of,
              ". Only finite numbers are accepted: replace it with a number "
              "or remove the row.");
  TORCH_CHECK(status != NumberStatus::kOutOfRange,
              scanner.where(f.line, c),
              ": value ",
              text_of,
              " is out of the range of float64. Rescale the column or "
              "remove the row.");
  TORCH_CHECK(false,
              scanner.where(f.line, c),
              ": not a number: ",
              text_of,
              ". Cells of target and feature columns must be plain numbers "
              "like 3, -0.5 or 1e-3; fix the cell, or leave the column out "
              "of CsvOptions::features.");
  __builtin_unreachable();
}

[[noreturn]] void throw_ragged(const Scanner& scanner,
                               const std::vector<Field>& fields,
                               size_t n_columns,
                               char delim) {
  const bool too_many = fields.size() > n_columns;
  const Field& at_field = too_many ? fields[n_columns] : fields.back();
  TORCH_CHECK(
      false,
      scanner.where(at_field.line, too_many ? n_columns : fields.size()),
      ": ragged row: found ",
      fields.size(),
      " field(s), expected ",
      n_columns,
      " as in the header. Make every row have one field per header "
      "column (check for a stray or missing delimiter",
      (delim == ',' ? ", or a decimal comma: quote such cells" : ""),
      ").");
  __builtin_unreachable();
}

// Appends the selected cells of `fields`, a record the fast path did not
// take, to `values`, or throws naming the row or the cell. `to_float`: the
// values must not overflow float32 (be below `float_limit`).
void append_checked(const Scanner& scanner,
                    const std::vector<Field>& fields,
                    const Columns& columns,
                    size_t n_columns,
                    char delim,
                    bool to_float,
                    double float_limit,
                    Values& values) {
  if (C10_UNLIKELY(fields.size() != n_columns)) {
    throw_ragged(scanner, fields, n_columns, delim);
  }
  auto& feature_values = values.features;
  const size_t base = feature_values.size();
  feature_values.resize(base + columns.features.size());
  for (const auto& [c, slot] : columns.selected) {
    const Field& f = fields[c];
    double v = 0.0;
    const NumberStatus status = parse_number(f, v);
    if (C10_UNLIKELY(status != NumberStatus::kOk)) {
      throw_cell_error(scanner, f, c, status);
    }
    TORCH_CHECK(
        !to_float || std::abs(v) < float_limit,
        scanner.where(f.line, c),
        ": value ",
        quote(std::string_view(f.begin, f.size), 40),
        " overflows float32. Read with CsvOptions().dtype(at::kDouble) or "
        "rescale the column.");
    if (slot == Columns::kTarget) {
      values.targets.push_back(v);
    } else {
      feature_values[base + static_cast<size_t>(slot)] = v;
    }
  }
}

}  // namespace

void parse_records(Scanner& scanner,
                   const Columns& columns,
                   size_t n_columns,
                   c10::ScalarType dtype,
                   char delim,
                   Values& values) {
  const size_t n_features = columns.features.size();
  std::vector<Field> fields;
  fields.reserve(n_columns + 1);
  auto& feature_values = values.features;
  auto& target_values = values.targets;
  if (feature_values.empty()) {
    const size_t row_bound =
        estimate_rows(scanner.position(), scanner.end(), n_columns);
    feature_values.reserve(row_bound * n_features);
    target_values.reserve(row_bound);
  }
  const bool to_float = dtype == at::kFloat;
  // Doubles at or above 2^128 - 2^103 round to infinity as float (the
  // comparison avoids an out-of-range float conversion, which is UB).
  const double kFloatRoundsToInf = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

  // Where each column's value goes: a feature index, kTarget, or nowhere.
  constexpr int64_t kSkip = -2;
  std::vector<int64_t> slot_of(n_columns, kSkip);
  for (const auto& [c, slot] : columns.selected) {
    slot_of[c] = slot;
  }
  std::vector<double> row(n_features + 1);  // the target last
  const auto cell = [&](size_t c, const char* b, const char* e) {
    const int64_t slot = slot_of[c];
    if (slot == kSkip) {
      return true;
    }
    double v = 0.0;
    if (parse_number(Field{b, static_cast<size_t>(e - b), 0, false}, v) !=
            NumberStatus::kOk ||
        (to_float && !(std::abs(v) < kFloatRoundsToInf))) {
      return false;
    }
    row[slot == Columns::kTarget ? n_features : static_cast<size_t>(slot)] = v;
    return true;
  };

  for (;;) {
    // Plain records (nearly all) on the fast path; any other, and any
    // record with a bad value, on the checked path.
    const auto plain = scanner.next_plain_record(n_columns, cell);
    if (plain == Scanner::Plain::kRead) {
      feature_values.insert(feature_values.end(), row.begin(), row.end() - 1);
      target_values.push_back(row.back());
      continue;
    }
    if (plain == Scanner::Plain::kEnd || !scanner.next_record(fields)) {
      break;
    }
    append_checked(scanner,
                   fields,
                   columns,
                   n_columns,
                   delim,
                   to_float,
                   kFloatRoundsToInf,
                   values);
  }
}

void check_some_rows(size_t rows,
                     int64_t line,
                     const Header& header,
                     const std::string& source) {
  TORCH_CHECK(
      rows > 0,
      "CSV error in ",
      source,
      " at line ",
      std::max<int64_t>(line, header.line + 1),
      ", column 1: the header (line ",
      header.line,
      ") is followed by no data rows. Add at least one row of numbers.");
}

std::vector<size_t> block_starts(std::string_view text, size_t blocks) {
  const size_t n = text.size();
  blocks = std::max<size_t>(1, std::min(blocks, n));
  // Quotes in each even piece, counted in parallel.
  std::vector<size_t> quotes(blocks, 0);
  at::parallel_for(
      0, static_cast<int64_t>(blocks), 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const auto k = static_cast<size_t>(b);
          const size_t from = k * n / blocks;
          const size_t to = (k + 1) * n / blocks;
          quotes[k] = static_cast<size_t>(
              std::count(text.data() + from, text.data() + to, '"'));
        }
      });
  std::vector<size_t> starts(blocks + 1, n);
  starts[0] = 0;
  bool odd = false;  // an odd number of quotes before piece k
  for (size_t k = 1; k < blocks; ++k) {
    odd ^= (quotes[k - 1] & 1) != 0;
    const size_t cut = k * n / blocks;
    if (starts[k - 1] >= cut) {  // a long record: block k - 1 is empty
      starts[k] = starts[k - 1];
      continue;
    }
    starts[k] = std::min(record_start_after(text, cut, odd), n);
  }
  return starts;
}

size_t record_start_after(std::string_view text, size_t from, bool odd) {
  bool inside = odd;
  for (size_t p = from; p < text.size(); ++p) {
    const char c = text[p];
    if (c == '"') {
      inside = !inside;
    } else if (c == '\n' && !inside) {
      return p + 1;
    }
  }
  return std::string_view::npos;
}

std::optional<std::vector<Values>> parse_in_blocks(std::string_view text,
                                                   size_t blocks,
                                                   const Columns& columns,
                                                   size_t n_columns,
                                                   c10::ScalarType dtype,
                                                   char delim,
                                                   const std::string& source) {
  const auto starts = block_starts(text, blocks);
  const size_t n_blocks = starts.size() - 1;
  std::vector<Values> parts(n_blocks);
  std::atomic<bool> failed{false};
  at::parallel_for(
      0, static_cast<int64_t>(n_blocks), 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end && !failed.load(); ++b) {
          const auto k = static_cast<size_t>(b);
          // Lines are not counted here: a block that fails is parsed again
          // serially, which names the line.
          Scanner block(text.substr(starts[k], starts[k + 1] - starts[k]),
                        delim,
                        source,
                        Piece{/*first_line=*/0, /*at_start=*/false});
          try {
            parse_records(block, columns, n_columns, dtype, delim, parts[k]);
          } catch (const c10::Error&) {
            failed = true;
          }
        }
      });
  if (failed) {
    return std::nullopt;
  }
  return parts;
}

std::vector<Values> read_rows(Scanner& scanner,
                              const Header& header,
                              const Columns& columns,
                              c10::ScalarType dtype,
                              char delim,
                              const std::string& source) {
  const size_t n_columns = header.names.size();
  const std::string_view rest(
      scanner.position(),
      static_cast<size_t>(scanner.end() - scanner.position()));
  const size_t blocks = default_blocks();
  if (blocks > 1 && rest.size() >= g_min_bytes.load()) {
    auto parts =
        parse_in_blocks(rest, blocks, columns, n_columns, dtype, delim, source);
    size_t rows = 0;
    for (const auto& part : parts.value_or(std::vector<Values>{})) {
      rows += part.rows();
    }
    if (parts && rows > 0) {
      ++g_reads_in_blocks;
      return std::move(*parts);
    }
  }
  std::vector<Values> parts(1);
  parse_records(scanner, columns, n_columns, dtype, delim, parts[0]);
  check_some_rows(parts[0].rows(), scanner.line(), header, source);
  return parts;
}

size_t min_block_bytes() {
  return g_min_bytes.load();
}

size_t default_blocks() {
  const size_t forced = g_forced_blocks.load();
  const auto threads = static_cast<size_t>(at::get_num_threads());
  return forced > 0 ? forced : (threads > 1 ? 4 * threads : 1);
}

void count_read_in_blocks() {
  ++g_reads_in_blocks;
}

int64_t reads_in_blocks() {
  return g_reads_in_blocks.load();
}

void set_block_parsing_for_testing(size_t min_bytes, size_t blocks) {
  if (blocks == 0) {
    g_min_bytes = size_t{1} << 20;
    g_forced_blocks = 0;
  } else {
    g_min_bytes = min_bytes;
    g_forced_blocks = blocks;
  }
}

}  // namespace normopt::data::csv
