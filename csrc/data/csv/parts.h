#pragma once
// Internal to the CSV reader: parse_csv (csrc/data/csv.cpp) in its four
// jobs, each in its own file: the header (header.cpp), the selection of the
// target and feature columns (columns.cpp), the data rows, parsed whole
// before anything is made of them (rows.cpp), and the tensors (tensors.cpp).

#include <normopt/data/csv.h>

#include "scanner.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace normopt::data::csv {

/// The header row.
struct Header {
  /// Column names, unescaped, in file order.
  std::vector<std::string> names;
  /// Column index by name (the keys view `names`).
  std::unordered_map<std::string_view, size_t> index_of;
  /// 1-based line of the header.
  int64_t line = 0;
};

/// Reads the header row into `header` and gives the scanner the names for
/// its messages. Throws c10::Error for an empty input and for an empty or
/// duplicated name.
void read_header(Scanner& scanner, const std::string& source, Header& header);

/// Where each column goes.
struct Columns {
  /// The target column and the feature columns (in CsvOptions order).
  size_t target = 0;
  std::vector<size_t> features;
  /// Every selected column in file order (errors name the leftmost bad
  /// cell), with its slot: a feature index, or kTarget.
  static constexpr int64_t kTarget = -1;
  std::vector<std::pair<size_t, int64_t>> selected;
};

/// The columns `options` select. Throws c10::Error naming the header line
/// for an unknown, repeated or conflicting name, or no feature left.
Columns select_columns(const Header& header,
                       const CsvOptions& options,
                       const std::string& source);

/// The selected cells of every data row, as doubles, row-major.
struct Values {
  std::vector<double> features;
  std::vector<double> targets;
};

/// Parses every remaining row. Throws c10::Error with line and column for a
/// ragged row or a cell that is not a finite number (in range of `dtype`),
/// and when there is no data row.
Values read_rows(Scanner& scanner,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype,
                 char delimiter,
                 const std::string& source);

/// The Table: the values rounded once to `dtype`, and the names.
Table make_table(const Values& values,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype);

}  // namespace normopt::data::csv
