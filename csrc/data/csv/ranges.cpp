#include "parts.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <string>

namespace normopt::data::csv {

namespace {

// Reads [from, to) of `file` appended to `text`; returns the bytes read.
size_t append(const util::InputFile& file,
              int64_t from,
              int64_t to,
              std::string& text) {
  const size_t have = text.size();
  text.resize(have + static_cast<size_t>(std::max<int64_t>(0, to - from)));
  const size_t got = file.read_at(from, text.data() + have, text.size() - have);
  text.resize(have + got);
  return got;
}

}  // namespace

std::optional<Table> read_csv_range(const std::string& path,
                                    const CsvOptions& options,
                                    int64_t rank,
                                    int64_t world,
                                    const GatherInts& gather) {
  // 1. Local: the header, this rank's even share of the data bytes, and
  //    the quotes in it. An error here is exchanged, not thrown, so that no
  //    rank waits in a collective for one that failed.
  Header header;
  Columns columns;
  std::string text;  // file bytes from `cut`
  int64_t cut = 0, next_cut = 0, size = 0;
  int64_t quotes = 0;
  bool ok = true;
  std::optional<util::InputFile> file;
  try {
    check_options(options, path);
    file.emplace(path, "CSV error");
    size = file->size();
    const DataStart start = read_file_header(*file, options, header, columns);
    const int64_t data = size - start.offset;
    cut = start.offset + data * rank / world;
    next_cut = start.offset + data * (rank + 1) / world;
    append(*file, cut, next_cut, text);
    quotes = std::count(text.begin(), text.end(), '"');
  } catch (const c10::Error&) {
    ok = false;
  }
  const auto first = gather({ok ? 1 : 0, quotes});
  for (int64_t r = 0; r < world; ++r) {
    if (first[2 * r] == 0) {
      return std::nullopt;  // every rank reads the whole file for the message
    }
  }
  // 2. The rows start at the first line ending after each cut that has an
  //    even number of quotes before it (rank 0 at the first data row).
  int64_t quotes_before = 0;
  for (int64_t r = 0; r < rank; ++r) {
    quotes_before += first[2 * r + 1];
  }
  const auto record_start = [&](int64_t from, bool odd) {
    // Scans on past the bytes read so far, 64 KiB at a time.
    size_t p = static_cast<size_t>(from - cut);
    for (;;) {
      const size_t found = record_start_after(text, p, odd);
      if (found != std::string::npos) {
        return cut + static_cast<int64_t>(found);
      }
      const auto more = std::count(
          text.begin() + static_cast<std::ptrdiff_t>(p), text.end(), '"');
      odd = odd != (more % 2 != 0);
      p = text.size();
      const int64_t end = cut + static_cast<int64_t>(text.size());
      if (append(*file, end, end + (int64_t{1} << 16), text) == 0) {
        return size;
      }
    }
  };
  const int64_t begin =
      rank == 0 ? cut : record_start(cut, quotes_before % 2 != 0);
  const int64_t end =
      rank + 1 == world
          ? size
          : record_start(next_cut, (quotes_before + quotes) % 2 != 0);
  // 3. Parse [begin, end) in blocks; any failure, or no rows anywhere,
  //    sends every rank to the whole-file parse.
  std::optional<std::vector<Values>> parts;
  if (begin < end) {
    parts = parse_in_blocks(
        std::string_view(text).substr(static_cast<size_t>(begin - cut),
                                      static_cast<size_t>(end - begin)),
        default_blocks(),
        columns,
        header.names.size(),
        options.dtype(),
        options.delimiter(),
        path);
  } else {
    parts.emplace();
  }
  int64_t rows = 0;
  for (const auto& part : parts.value_or(std::vector<Values>{})) {
    rows += static_cast<int64_t>(part.rows());
  }
  const auto second = gather({parts ? 1 : 0, rows});
  int64_t total_rows = 0;
  for (int64_t r = 0; r < world; ++r) {
    if (second[2 * r] == 0) {
      return std::nullopt;
    }
    total_rows += second[2 * r + 1];
  }
  if (total_rows == 0) {
    return std::nullopt;
  }
  return make_table(*parts, header, columns, options.dtype());
}

}  // namespace normopt::data::csv
