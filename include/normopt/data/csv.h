#pragma once

/// Reading numeric CSV files into tensors.
///
/// A file holds one header row of column names, then one row per sample.
/// `read_csv` picks one target column and a list of feature columns by name
/// and returns them as a `Table`: features (N, F) and targets (N, 1), both of
/// the requested dtype, on the CPU, contiguous.
///
/// \code
///   // data.csv:
///   //   x1,x2,price
///   //   1.5,2,10.25
///   //   3,4.5,20
///   auto table = normopt::data::read_csv(
///       "data.csv",
///       normopt::data::CsvOptions().target("price").dtype(at::kDouble));
///   // table.features: (2, 2) float64, table.feature_names == {"x1", "x2"}
///   // table.targets:  (2, 1) float64, table.target_name == "price"
///   auto [train, valid] = normopt::data::train_validation_split(
///       table, /*validation_fraction=*/0.2, /*seed=*/42);
/// \endcode
///
/// Format accepted:
///  - line endings LF, CRLF (or a lone CR); the last line may or may not end
///    with one; a UTF-8 byte order mark at the very start is skipped;
///  - RFC 4180 quoting, in the header and in cells: `"a,b"` is one field and
///    `""` inside quotes is one `"`; quoted fields may span lines. The text
///    between the quotes is taken verbatim;
///  - spaces and tabs around a field (outside any quotes) are trimmed, except
///    the delimiter character itself when it is a space or a tab;
///  - fully empty lines are ignored wherever they appear (before the header,
///    between rows, at the end). A line holding only spaces is *not* empty:
///    it is a row with one empty field, hence an error;
///  - numbers in the syntax of `std::from_chars` for `double` (decimal or
///    scientific, optional leading `+` or `-`, locale-independent); the whole
///    cell must be a number; `nan`, `inf` and values out of the range of the
///    dtype are rejected;
///  - columns that are neither the target nor a feature must be well-formed
///    CSV fields but are not parsed, so they may hold text (ids, dates).
///
/// Every problem throws `c10::Error` naming the source, the 1-based line and
/// the 1-based column (its number and header name) when there is one, and
/// what to do about it. A malformed file never yields partial tensors.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <normopt/data/table.h>
#include <normopt/macros.h>
#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace normopt::data {

/// Options for reading a numeric CSV file, in LibTorch's options style:
/// `CsvOptions().target("y").features({"a", "b"}).dtype(at::kDouble)`.
struct NORMOPT_API CsvOptions {
  /// Name of the target column; "" (the default) selects the last column.
  TORCH_ARG(std::string, target) = "";
  /// Names of the feature columns, in the order wanted in the feature tensor;
  /// empty (the default) selects every column except the target, in file
  /// order. Naming the target, naming a column twice or naming a column that
  /// is not in the header is an error.
  TORCH_ARG(std::vector<std::string>, features) = {};
  /// Element type of both tensors: at::kFloat (default) or at::kDouble. Any
  /// other type is an error. Values are parsed as double, then rounded once.
  TORCH_ARG(c10::ScalarType, dtype) = at::kFloat;
  /// Field separator, ',' by default (e.g. ';' or '\t' for other dialects).
  /// It cannot be '"', '\n' or '\r'.
  TORCH_ARG(char, delimiter) = ',';
};

/// Reads the CSV file at `path` as `parse_csv` parses text, the path naming
/// the source in error messages. The file is parsed as it is read, 4 MiB at
/// a time (it is never held whole: memory is the tensors plus the values
/// being parsed); with more than one LibTorch intra-op thread
/// (at::set_num_threads), byte ranges of the file are parsed in parallel,
/// each starting at a record start, with exactly the serial result and
/// messages. For files larger than memory see CsvReader (csv_reader.h).
/// Throws c10::Error when the file cannot be opened or read (naming the
/// path and the OS reason), and for every parse error listed at `parse_csv`.
NORMOPT_API Table read_csv(const std::string& path,
                           const CsvOptions& options = {});

/// Parses CSV text already in memory (format: see the top of this file);
/// `source` names it in error messages (a file path, or "<memory>").
///
/// Throws c10::Error, with line and column, for: an empty input (no header),
/// a header without data rows, an empty or duplicated column name, a target
/// or feature name absent from the header (the message lists the columns),
/// a row with more or fewer fields than the header, an empty selected cell,
/// a selected cell that is not a number, a non-finite or out-of-range value,
/// an unterminated quote, text after a closing quote; and, without position,
/// for an invalid dtype or delimiter, or an empty feature selection.
///
/// Safe on arbitrary bytes: never reads outside `text`, never hangs, and
/// throws nothing but c10::Error (or std::bad_alloc when memory runs out).
/// From 1 MiB of rows and more than one intra-op thread, blocks of rows are
/// parsed in parallel; the result and every message are the serial parse's.
NORMOPT_API Table parse_csv(std::string_view text,
                            const CsvOptions& options = {},
                            const std::string& source = "<memory>");

}  // namespace normopt::data
