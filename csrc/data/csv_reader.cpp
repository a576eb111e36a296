#include <normopt/data/csv_reader.h>

#include "../util/files.h"
#include "csv/parts.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace normopt::data {

namespace csv {

DataStart read_file_header(const util::InputFile& file,
                           const CsvOptions& options,
                           Header& header,
                           Columns& columns) {
  // The first 64 KiB, more until the header record is complete.
  std::string text;
  bool eof = false;
  std::vector<Field> fields;
  for (size_t want = size_t{1} << 16;; want *= 2) {
    const size_t have = text.size();
    text.resize(want);
    const size_t got = file.read_at(
        static_cast<int64_t>(have), text.data() + have, want - have);
    text.resize(have + got);
    eof = got < want - have;
    Scanner probe(text, options.delimiter(), file.path(), Piece{1, true, eof});
    if (probe.next_record(fields) || !probe.incomplete()) {
      break;
    }
  }
  Scanner scanner(text, options.delimiter(), file.path(), Piece{1, true, eof});
  read_header(scanner, file.path(), header);
  columns = select_columns(header, options, file.path());
  return {scanner.position() - text.data(), scanner.line()};
}

}  // namespace csv

struct CsvReader::State {
  State(std::string path_, CsvOptions options_, int64_t chunk, int64_t buffer)
      : file(std::move(path_), "CSV error"),
        options(std::move(options_)),
        chunk_rows(static_cast<size_t>(chunk)),
        buffer(static_cast<size_t>(buffer)) {}

  util::InputFile file;
  CsvOptions options;
  size_t chunk_rows;
  // Built in place and never moved: index_of's keys view the names.
  csv::Header header;
  csv::Columns columns;
  std::vector<std::string> feature_names;
  // Where the data rows start: byte offset and line.
  int64_t data_offset = 0;
  int64_t data_line = 1;

  // The file's bytes [file_pos - (end - begin), file_pos) not yet parsed
  // are buffer[begin, end).
  std::vector<char> buffer;
  size_t begin = 0;
  size_t end = 0;
  int64_t file_pos = 0;
  int64_t line = 1;
  bool eof = false;   // buffer holds the end of the file
  bool done = false;  // every row parsed

  // Rows parsed, not yet yielded: pending rows [pending_row, rows()).
  csv::Values pending;
  size_t pending_row = 0;
  int64_t rows_read = 0;
  int64_t rows_parsed = 0;
  std::exception_ptr error;

  std::string_view unparsed() const {
    return {buffer.data() + begin, end - begin};
  }

  // Moves the unparsed bytes to the front and reads more of the file after
  // them; doubles the buffer when one record fills it.
  void fill() {
    if (begin > 0) {
      std::copy(buffer.begin() + static_cast<std::ptrdiff_t>(begin),
                buffer.begin() + static_cast<std::ptrdiff_t>(end),
                buffer.begin());
      end -= begin;
      begin = 0;
    }
    if (end == buffer.size()) {
      buffer.resize(buffer.size() * 2);
    }
    const size_t want = buffer.size() - end;
    const size_t got = file.read_at(file_pos, buffer.data() + end, want);
    file_pos += static_cast<int64_t>(got);
    end += got;
    eof = got < want;
  }

  // Parses what the buffer holds after one more read.
  void parse_more() {
    fill();
    if (pending_row > 0) {
      const size_t f = columns.features.size();
      auto& fv = pending.features;
      auto& tv = pending.targets;
      fv.erase(fv.begin(),
               fv.begin() + static_cast<std::ptrdiff_t>(pending_row * f));
      tv.erase(tv.begin(),
               tv.begin() + static_cast<std::ptrdiff_t>(pending_row));
      pending_row = 0;
    }
    const size_t before = pending.rows();
    const std::string_view text = unparsed();
    csv::Scanner scanner(text,
                         options.delimiter(),
                         file.path(),
                         csv::Piece{line, /*at_start=*/false, /*at_end=*/eof});
    scanner.set_names(&header.names);
    csv::parse_records(scanner,
                       columns,
                       header.names.size(),
                       options.dtype(),
                       options.delimiter(),
                       pending);
    begin += static_cast<size_t>(scanner.position() - text.data());
    line = scanner.line();
    rows_parsed += static_cast<int64_t>(pending.rows() - before);
    if (eof && !scanner.incomplete()) {
      done = true;
      csv::check_some_rows(
          static_cast<size_t>(rows_parsed), line, header, file.path());
    }
  }

  void read_header() {
    const auto start = csv::read_file_header(file, options, header, columns);
    for (size_t c : columns.features) {
      feature_names.push_back(header.names[c]);
    }
    file_pos = data_offset = start.offset;
    line = data_line = start.line;
  }
};

CsvReader::CsvReader(std::string path,
                     CsvOptions options,
                     int64_t chunk_rows,
                     int64_t buffer_bytes) {
  TORCH_CHECK(chunk_rows >= 1 && buffer_bytes >= 1,
              "CsvReader(",
              path,
              "): chunk_rows and buffer_bytes must be at least 1, got ",
              chunk_rows,
              " and ",
              buffer_bytes,
              ". Pass the number of rows each part should hold (65536 by "
              "default) and the bytes of file to hold at once (4 MiB).");
  csv::check_options(options, path);
  state_ = std::make_unique<State>(
      std::move(path), std::move(options), chunk_rows, buffer_bytes);
  state_->read_header();
}

CsvReader::~CsvReader() = default;
CsvReader::CsvReader(CsvReader&&) noexcept = default;
CsvReader& CsvReader::operator=(CsvReader&&) noexcept = default;

std::optional<Table> CsvReader::next() {
  State& s = *state_;
  if (s.error) {
    std::rethrow_exception(s.error);
  }
  try {
    while (s.pending.rows() - s.pending_row < s.chunk_rows && !s.done) {
      s.parse_more();
    }
  } catch (...) {
    s.error = std::current_exception();
    throw;
  }
  const size_t n = std::min(s.chunk_rows, s.pending.rows() - s.pending_row);
  if (n == 0) {
    return std::nullopt;
  }
  Table part = csv::make_table(
      {csv::RowRange{&s.pending, s.pending_row, s.pending_row + n}},
      s.header,
      s.columns,
      s.options.dtype());
  s.pending_row += n;
  s.rows_read += static_cast<int64_t>(n);
  return part;
}

void CsvReader::rewind() {
  State& s = *state_;
  s.begin = s.end = 0;
  s.file_pos = s.data_offset;
  s.line = s.data_line;
  s.eof = s.done = false;
  s.pending = {};
  s.pending_row = 0;
  s.rows_read = s.rows_parsed = 0;
  s.error = nullptr;
}

const std::vector<std::string>& CsvReader::feature_names() const {
  return state_->feature_names;
}

const std::string& CsvReader::target_name() const {
  return state_->header.names[state_->columns.target];
}

int64_t CsvReader::rows_read() const {
  return state_->rows_read;
}

const std::string& CsvReader::path() const {
  return state_->file.path();
}

}  // namespace normopt::data
