#include <normopt/data/csv.h>

#include "../util/files.h"
#include "csv/parts.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include <string>
#include <vector>

namespace normopt::data {

using csv::quote;

namespace csv {

void check_options(const CsvOptions& options, const std::string& source) {
  const c10::ScalarType dtype = options.dtype();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble,
      "CSV error in ",
      source,
      ": CsvOptions::dtype must be at::kFloat or at::kDouble, got ",
      dtype,
      ". Pass CsvOptions().dtype(at::kFloat) or .dtype(at::kDouble), and "
      "convert the tensors afterwards if another type is needed.");
  const char delim = options.delimiter();
  TORCH_CHECK(
      delim != '"' && delim != '\n' && delim != '\r',
      "CSV error in ",
      source,
      ": CsvOptions::delimiter cannot be ",
      quote(std::string_view(&delim, 1)),
      " (it is reserved for quoting or line endings). Use ',' ';' '\\t' "
      "or another separator.");
}

}  // namespace csv

Table parse_csv(std::string_view text,
                const CsvOptions& options,
                const std::string& source) {
  csv::check_options(options, source);
  const c10::ScalarType dtype = options.dtype();
  const char delim = options.delimiter();

  csv::Scanner scanner(text, delim, source);
  csv::Header header;
  csv::read_header(scanner, source, header);
  const auto columns = csv::select_columns(header, options, source);
  const auto parts =
      csv::read_rows(scanner, header, columns, dtype, delim, source);
  return csv::make_table(parts, header, columns, dtype);
}

Table read_csv(const std::string& path, const CsvOptions& options) {
  csv::check_options(options, path);
  const util::InputFile file(path, "CSV error");
  csv::Header header;
  csv::Columns columns;
  const auto start = csv::read_file_header(file, options, header, columns);
  // The file is never held whole: the data bytes are parsed as they are
  // read, a window at a time. With several intra-op threads, in byte ranges
  // in parallel (each starting at a record start); any failure there, or no
  // rows, sends it to the serial parse, so every message is the serial
  // one, with its line.
  const size_t pieces = csv::default_blocks();
  if (pieces > 1 && static_cast<size_t>(file.size() - start.offset) >=
                        csv::min_block_bytes()) {
    if (auto parts = csv::parse_in_ranges(file,
                                          start.offset,
                                          file.size(),
                                          pieces,
                                          header,
                                          columns,
                                          options)) {
      size_t rows = 0;
      for (const auto& part : *parts) {
        rows += part.rows();
      }
      if (rows > 0) {
        csv::count_read_in_blocks();
        return csv::make_table(*parts, header, columns, options.dtype());
      }
    }
  }
  int64_t line = start.line;
  std::vector<csv::Values> parts;
  parts.push_back(csv::parse_windows(
      file, start.offset, file.size(), line, header, columns, options));
  csv::check_some_rows(parts[0].rows(), line, header, path);
  return csv::make_table(parts, header, columns, options.dtype());
}

}  // namespace normopt::data
