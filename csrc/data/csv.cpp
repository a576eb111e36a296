#include <normopt/data/csv.h>

#include "../util/files.h"
#include "csv/parts.h"

#include <c10/util/Exception.h>

#include <string>

namespace normopt::data {

using csv::quote;

Table parse_csv(std::string_view text,
                const CsvOptions& options,
                const std::string& source) {
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

  csv::Scanner scanner(text, delim, source);
  csv::Header header;
  csv::read_header(scanner, source, header);
  const auto columns = csv::select_columns(header, options, source);
  const auto values =
      csv::read_rows(scanner, header, columns, dtype, delim, source);
  return csv::make_table(values, header, columns, dtype);
}

Table read_csv(const std::string& path, const CsvOptions& options) {
  const std::string text = util::read_file(path, "CSV error");
  return parse_csv(text, options, path);
}

}  // namespace normopt::data
