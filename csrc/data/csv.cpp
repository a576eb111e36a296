#include <normopt/data/csv.h>

#include "../util/files.h"
#include "csv/parts.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include <string>

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
  const util::InputFile file(path, "CSV error");
  const auto size = static_cast<size_t>(file.size());
  // Read in pieces on the intra-op threads, into memory that is not
  // zero-filled first (std::string would be).
  std::unique_ptr<char[]> text(new char[size + 1]);
  constexpr size_t kPiece = size_t{8} << 20;
  const auto pieces = static_cast<int64_t>((size + kPiece - 1) / kPiece);
  std::atomic<bool> short_read{false};
  at::parallel_for(0, pieces, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const size_t from = static_cast<size_t>(k) * kPiece;
      const size_t n = std::min(kPiece, size - from);
      if (file.read_at(static_cast<int64_t>(from), text.get() + from, n) != n) {
        short_read = true;
      }
    }
  });
  // A file that changed size while it was read: read it again to its end.
  if (short_read || file.read_at(static_cast<int64_t>(size), text.get(), 1)) {
    return parse_csv(util::read_file(path, "CSV error"), options, path);
  }
  return parse_csv(std::string_view(text.get(), size), options, path);
}

}  // namespace normopt::data
