#pragma once
// Internal to the CSV reader: the parts that read_csv and parse_csv
// (csrc/data/csv.cpp), data::CsvReader (csrc/data/csv_reader.cpp) and
// read_csv_range (<normopt/data/detail/csv_range.h>, for
// distributed::read_csv_shard) are made of, one job per file:
//   header.cpp   the header row (read_header)
//   columns.cpp  the target and feature columns the options select
//                (select_columns)
//   rows.cpp     the data rows of a text, serially or in blocks on the
//                intra-op threads (parse_records, read_rows, parse_in_blocks)
//   ranges.cpp   the rows of a byte range of a file, parsed as they are
//                read; ranges in parallel, or one per rank (parse_windows,
//                parse_in_ranges, and read_csv_range of data/detail/csv_range.h)
//   tensors.cpp  the Table made of the parsed values (make_table)
// check_options is defined in csv.cpp, read_file_header in csv_reader.cpp;
// scanner.h splits a text into records and fields.

#include <normopt/data/csv.h>
#include <normopt/data/detail/csv_range.h>
#include <normopt/macros.h>

#include "../../util/files.h"
#include "scanner.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace normopt::data::csv {

/// Throws c10::Error for a dtype other than float32/float64 and for a
/// delimiter that is '"' or a line ending.
void check_options(const CsvOptions& options, const std::string& source);

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

/// Where the data rows of a file start: byte offset and 1-based line.
struct DataStart {
  int64_t offset;
  int64_t line;
};

/// Reads the header of `file` (as many bytes as it takes, from 64 KiB) with
/// read_header and selects the columns with select_columns (their errors
/// name the file).
DataStart read_file_header(const util::InputFile& file,
                           const CsvOptions& options,
                           Header& header,
                           Columns& columns);

/// The selected cells of data rows, as doubles, row-major.
struct Values {
  std::vector<double> features;
  std::vector<double> targets;
  size_t rows() const {
    return targets.size();
  }
};

/// Parses the records `scanner` gives until it stops (end of its text, or an
/// incomplete record: see Piece::at_end), appending their selected cells to
/// `values`. Throws c10::Error with line and column for a ragged row or a
/// cell that is not a finite number (in range of `dtype`).
void parse_records(Scanner& scanner,
                   const Columns& columns,
                   size_t n_columns,
                   c10::ScalarType dtype,
                   char delimiter,
                   Values& values);

/// Throws the "no data rows" c10::Error when `rows` is 0; `line` is where
/// reading stopped.
void check_some_rows(size_t rows,
                     int64_t line,
                     const Header& header,
                     const std::string& source);

/// Every remaining row of the scanner's text, in parts (file order). Large
/// texts are parsed in blocks on LibTorch's intra-op threads; any error in
/// any block, or no rows, sends it to the serial parse, so the rows and
/// every message are the serial parse's. Throws as parse_records, and when
/// there is no data row.
std::vector<Values> read_rows(Scanner& scanner,
                              const Header& header,
                              const Columns& columns,
                              c10::ScalarType dtype,
                              char delimiter,
                              const std::string& source);

/// Parses `text` (whole records, starting at a record start) split by
/// block_starts into `blocks` blocks, on LibTorch's intra-op threads: the
/// rows of each block, or nullopt when any block fails (the caller parses
/// again serially for the message). Lines are not counted.
std::optional<std::vector<Values>> parse_in_blocks(std::string_view text,
                                                   size_t blocks,
                                                   const Columns& columns,
                                                   size_t n_columns,
                                                   c10::ScalarType dtype,
                                                   char delimiter,
                                                   const std::string& source);

/// Blocks per parse: 4 per intra-op thread with more than one thread, else
/// 1 (or what set_block_parsing_for_testing forced).
size_t default_blocks();

/// The smallest text parsed in blocks (1 MiB, or what
/// set_block_parsing_for_testing set).
size_t min_block_bytes();

/// Where `text` (starting at a record start, outside quotes) may be cut into
/// `blocks` pieces of about equal size that each start at a record start:
/// blocks + 1 offsets, the first 0 and the last text.size(), non-decreasing.
/// A cut is the first '\n' after an even cut that has an even number of '"'
/// before it. In a file with a stray '"' in an unquoted field a cut can fall
/// inside a quoted field; parsing the block before it then fails (it ends in
/// an unterminated quote), which is how callers notice.
std::vector<size_t> block_starts(std::string_view text, size_t blocks);

/// Consecutive rows of a Values.
struct RowRange {
  const Values* values;
  size_t begin;
  size_t end;
};

/// The position after the first '\n' at or after `from` that has an even
/// number of '"' before it, given whether the number before `from` is odd;
/// npos when there is none. (A record start unless the text has a stray '"'
/// in an unquoted field: see block_starts.)
size_t record_start_after(std::string_view text, size_t from, bool odd);

/// The Table of `rows` (in order): the values rounded once to `dtype`, and
/// the names.
Table make_table(const std::vector<RowRange>& rows,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype);
Table make_table(const std::vector<Values>& parts,
                 const Header& header,
                 const Columns& columns,
                 c10::ScalarType dtype);

/// The rows of [begin, end) of `file` (whole records, starting at a record
/// start), parsed as they are read, 4 MiB at a time: the bytes pass through
/// the cache once and only the values are held. `line` is the 1-based line
/// at `begin` (0 when lines do not matter) and, on return, where parsing
/// stopped. Throws as parse_records, naming `file`'s path and the line.
Values parse_windows(const util::InputFile& file,
                     int64_t begin,
                     int64_t end,
                     int64_t& line,
                     const Header& header,
                     const Columns& columns,
                     const CsvOptions& options);

/// The rows of [begin, end) of `file` (`begin` a record start with an even
/// number of '"' before it) cut into `pieces` byte ranges that each start
/// at a record start (placed as block_starts places them, after counting
/// the quotes of each range in parallel), each parsed with parse_windows on
/// LibTorch's intra-op threads. nullopt when any piece fails: the caller
/// parses again serially for the message. Lines are not counted.
std::optional<std::vector<Values>> parse_in_ranges(const util::InputFile& file,
                                                   int64_t begin,
                                                   int64_t end,
                                                   size_t pieces,
                                                   const Header& header,
                                                   const Columns& columns,
                                                   const CsvOptions& options);

/// Counts one more read parsed in blocks (or byte ranges), for tests.
void count_read_in_blocks();

/// For tests: how many reads were parsed in blocks (or ranges) so far, and a
/// way to force blocks on small texts (min_bytes, blocks; 0 blocks restores
/// the default: from 1 MiB of rows, 4 blocks per intra-op thread).
NORMOPT_API int64_t reads_in_blocks();
NORMOPT_API void set_block_parsing_for_testing(size_t min_bytes, size_t blocks);

}  // namespace normopt::data::csv
