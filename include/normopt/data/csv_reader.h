#pragma once

/// Reading a CSV file larger than memory: `CsvReader` yields it as Tables of
/// at most `chunk_rows` rows, holding only a buffer of the file and the rows
/// not yet yielded, so its memory does not grow with the file.
///
/// \code
///   normopt::data::CsvReader reader(
///       "big.csv", normopt::data::CsvOptions().target("price"),
///       /*chunk_rows=*/65536);
///   auto norm = normopt::nn::Normalization();
///   norm->adapt(reader);             // one pass: the whole file's statistics
///   reader.rewind();
///   while (auto part = reader.next()) {
///     // part->features: (<= 65536, F), part->targets: (<= 65536, 1)
///   }
/// \endcode
///
/// The format, the checks and every message are read_csv's
/// (<normopt/data/csv.h>), with the same lines and columns. What streaming
/// changes: an error is thrown by the next() that reaches it, so the parts
/// before it have been yielded (read_csv yields nothing from a malformed
/// file); the reader then stays failed (each next() throws the error again)
/// until rewind(). Reads of the file go through the OS (pread); the file
/// must not change while it is read.

#include <normopt/data/csv.h>
#include <normopt/data/stream.h>
#include <normopt/macros.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace normopt::data {

/// A CSV file read in parts (see the top of this file).
class NORMOPT_API CsvReader : public TableStream {
 public:
  /// Opens `path` and reads its header (choosing the columns as read_csv
  /// does). Each part holds at most `chunk_rows` rows (every part but the
  /// last exactly that many). The reader holds at most `buffer_bytes` of the
  /// file (more only while one record is longer) plus the rows of one
  /// buffer. Throws c10::Error for a file that cannot be opened, for every
  /// header and column error of read_csv, and for chunk_rows < 1 or
  /// buffer_bytes < 1.
  explicit CsvReader(std::string path,
                     CsvOptions options = {},
                     int64_t chunk_rows = 65536,
                     int64_t buffer_bytes = int64_t{4} << 20);
  ~CsvReader() override;
  CsvReader(CsvReader&&) noexcept;
  CsvReader& operator=(CsvReader&&) noexcept;

  /// The next part of at most chunk_rows rows, or std::nullopt after the
  /// last row. Throws the c10::Error of the first bad row in the part (see
  /// the top of this file), and for a file with a header but no data rows.
  std::optional<Table> next() override;

  /// Back to the first data row (the header is not read again).
  void rewind() override;

  /// The names of the selected feature columns and of the target.
  const std::vector<std::string>& feature_names() const;
  const std::string& target_name() const;

  /// Rows yielded since the start or the last rewind().
  int64_t rows_read() const;

  const std::string& path() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace normopt::data
