#include "parts.h"

#include <ATen/core/ATen_fwd.h>
#include <c10/core/ScalarType.h>

#include <algorithm>
#include <cmath>

namespace normopt::data::csv {

Values read_rows(Scanner& scanner,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype,
                 char delim,
                 const std::string& source) {
  const size_t n_columns = header.names.size();
  const size_t n_features = columns.features.size();
  std::vector<Field> fields;
  const size_t row_bound =
      estimate_rows(scanner.position(), scanner.end(), n_columns);
  Values values;
  auto& feature_values = values.features;
  auto& target_values = values.targets;
  feature_values.reserve(row_bound * n_features);
  target_values.reserve(row_bound);
  const bool to_float = dtype == at::kFloat;
  // Doubles at or above 2^128 - 2^103 round to infinity as float (the
  // comparison avoids an out-of-range float conversion, which is UB).
  const double kFloatRoundsToInf = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

  while (scanner.next_record(fields)) {
    if (fields.size() != n_columns) {
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
    }
    const size_t base = feature_values.size();
    feature_values.resize(base + n_features);
    for (const auto& [c, slot] : columns.selected) {
      const Field& f = fields[c];
      double v = 0.0;
      const NumberStatus status = parse_number(f, v);
      if (C10_UNLIKELY(status != NumberStatus::kOk)) {
        const std::string text_of =
            quote(f.escaped ? unescape(std::string_view(f.begin, f.size))
                            : std::string(f.begin, f.size),
                  40);
        TORCH_CHECK(
            status != NumberStatus::kEmpty,
            scanner.where(f.line, c),
            ": missing value (empty cell). Every target and feature cell "
            "must hold a number: fill it in or remove the row.");
        TORCH_CHECK(
            status != NumberStatus::kNonFinite,
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
        TORCH_CHECK(
            false,
            scanner.where(f.line, c),
            ": not a number: ",
            text_of,
            ". Cells of target and feature columns must be plain numbers "
            "like 3, -0.5 or 1e-3; fix the cell, or leave the column out "
            "of CsvOptions::features.");
      }
      TORCH_CHECK(
          !to_float || std::abs(v) < kFloatRoundsToInf,
          scanner.where(f.line, c),
          ": value ",
          quote(std::string_view(f.begin, f.size), 40),
          " overflows float32. Read with CsvOptions().dtype(at::kDouble) or "
          "rescale the column.");
      if (slot == Columns::kTarget) {
        target_values.push_back(v);
      } else {
        feature_values[base + static_cast<size_t>(slot)] = v;
      }
    }
  }
  const size_t n_rows = target_values.size();
  TORCH_CHECK(
      n_rows > 0,
      "CSV error in ",
      source,
      " at line ",
      std::max<int64_t>(scanner.line(), header.line + 1),
      ", column 1: the header (line ",
      header.line,
      ") is followed by no data rows. Add at least one row of numbers.");
  return values;
}

}  // namespace normopt::data::csv
