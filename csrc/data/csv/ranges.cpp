#include "parts.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace normopt::data::csv {

namespace {

constexpr size_t kWindow = size_t{4} << 20;

// File bytes in memory that is not zero-filled first (a std::string would
// write every byte once more before the read).
class Bytes {
 public:
  // Reads [from, to) of `file` after the bytes held; returns the bytes read.
  size_t append(const util::InputFile& file, int64_t from, int64_t to) {
    const auto want = static_cast<size_t>(std::max<int64_t>(0, to - from));
    reserve(size_ + want);
    const size_t got = file.read_at(from, data_.get() + size_, want);
    size_ += got;
    return got;
  }
  // Drops the first `n` bytes.
  void consume(size_t n) {
    if (n > 0) {
      std::memmove(data_.get(), data_.get() + n, size_ - n);
      size_ -= n;
    }
  }
  void clear() {
    size_ = 0;
  }
  std::string_view view() const {
    return {data_.get(), size_};
  }

 private:
  void reserve(size_t capacity) {
    if (capacity > capacity_) {
      capacity = std::max(capacity, 2 * capacity_);
      std::unique_ptr<char[]> grown(new char[capacity]);
      std::copy(data_.get(), data_.get() + size_, grown.get());
      data_ = std::move(grown);
      capacity_ = capacity;
    }
  }
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// The '"' in [from, to) of `file`, read a window at a time.
int64_t count_quotes(const util::InputFile& file, int64_t from, int64_t to) {
  Bytes window;
  int64_t quotes = 0;
  for (int64_t at = from; at < to;) {
    window.clear();
    const size_t got = window.append(
        file, at, std::min(to, at + static_cast<int64_t>(kWindow)));
    if (got == 0) {
      break;
    }
    const auto text = window.view();
    quotes += std::count(text.begin(), text.end(), '"');
    at += static_cast<int64_t>(got);
  }
  return quotes;
}

// The first record start at or after `from` (see record_start_after),
// given whether the quotes before `from` are odd; the file size if none.
int64_t record_start(const util::InputFile& file, int64_t from, bool odd) {
  Bytes window;
  for (int64_t at = from;;) {
    window.clear();
    const size_t got = window.append(file, at, at + (int64_t{1} << 16));
    if (got == 0) {
      return file.size();
    }
    const auto text = window.view();
    const size_t found = record_start_after(text, 0, odd);
    if (found != std::string_view::npos) {
      return at + static_cast<int64_t>(found);
    }
    odd = odd != (std::count(text.begin(), text.end(), '"') % 2 != 0);
    at += static_cast<int64_t>(got);
  }
}

}  // namespace

Values parse_windows(const util::InputFile& file,
                     int64_t begin,
                     int64_t end,
                     int64_t& line,
                     const Header& header,
                     const Columns& columns,
                     const CsvOptions& options) {
  Values values;
  Bytes window;
  bool reserved = false;
  for (int64_t at = begin; at < end || window.view().size() > 0;) {
    const size_t got = window.append(
        file, at, std::min(end, at + static_cast<int64_t>(kWindow)));
    at += static_cast<int64_t>(got);
    const bool last = at >= end || got == 0;
    const auto text = window.view();
    Scanner scanner(
        text, options.delimiter(), file.path(), Piece{line, false, last});
    scanner.set_names(&header.names);
    parse_records(scanner,
                  columns,
                  header.names.size(),
                  options.dtype(),
                  options.delimiter(),
                  values);
    line = scanner.line();
    if (last) {
      break;
    }
    const auto used = static_cast<size_t>(scanner.position() - text.data());
    if (!reserved && used > 0 && values.rows() > 0) {
      // Room for the whole range at the first window's bytes per row.
      const double rows_per_byte =
          static_cast<double>(values.rows()) / static_cast<double>(used);
      const auto rows =
          static_cast<size_t>(1.05 * rows_per_byte * (end - begin)) + 16;
      values.features.reserve(rows * columns.features.size());
      values.targets.reserve(rows);
      reserved = true;
    }
    window.consume(used);
  }
  return values;
}

std::optional<std::vector<Values>> parse_in_ranges(const util::InputFile& file,
                                                   int64_t begin,
                                                   int64_t end,
                                                   size_t pieces,
                                                   const Header& header,
                                                   const Columns& columns,
                                                   const CsvOptions& options) {
  const auto n = static_cast<int64_t>(std::max<size_t>(pieces, 1));
  std::vector<int64_t> cuts(n + 1), quotes(n, 0), starts(n + 1);
  for (int64_t k = 0; k <= n; ++k) {
    cuts[k] = begin + (end - begin) * k / n;
  }
  std::atomic<bool> failed{false};
  at::parallel_for(0, n, 1, [&](int64_t from, int64_t to) {
    for (int64_t k = from; k < to; ++k) {
      try {
        quotes[k] = count_quotes(file, cuts[k], cuts[k + 1]);
      } catch (const c10::Error&) {
        failed = true;
      }
    }
  });
  if (failed) {
    return std::nullopt;
  }
  starts[0] = begin;
  starts[n] = end;
  int64_t before = 0;
  for (int64_t k = 1; k < n; ++k) {
    before += quotes[k - 1];
    starts[k] = std::min(end, record_start(file, cuts[k], before % 2 != 0));
    starts[k] = std::max(starts[k], starts[k - 1]);
  }
  std::vector<Values> parts(n);
  at::parallel_for(0, n, 1, [&](int64_t from, int64_t to) {
    for (int64_t k = from; k < to && !failed; ++k) {
      if (starts[k] >= starts[k + 1]) {
        continue;
      }
      int64_t line = 0;  // not counted: a failure is parsed again whole
      try {
        parts[k] = parse_windows(
            file, starts[k], starts[k + 1], line, header, columns, options);
      } catch (const c10::Error&) {
        failed = true;
      }
    }
  });
  if (failed) {
    return std::nullopt;
  }
  return parts;
}

std::optional<Table> read_csv_range(const std::string& path,
                                    const CsvOptions& options,
                                    int64_t rank,
                                    int64_t world,
                                    const GatherInts& gather) {
  // 1. Local: the header, this rank's even share of the data bytes, and the
  //    quotes in it. An error here is exchanged, not thrown, so that no rank
  //    waits in a collective for one that failed.
  Header header;
  Columns columns;
  int64_t cut = 0, next_cut = 0;
  int64_t quotes = 0;
  bool ok = true;
  std::optional<util::InputFile> file;
  try {
    check_options(options, path);
    file.emplace(path, "CSV error");
    const DataStart start = read_file_header(*file, options, header, columns);
    const int64_t data = file->size() - start.offset;
    cut = start.offset + data * rank / world;
    next_cut = start.offset + data * (rank + 1) / world;
    quotes = count_quotes(*file, cut, next_cut);
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
  // 3. Parse [begin, end) (parse_in_ranges). Any failure, or no rows
  //    anywhere, sends every rank to the whole-file parse.
  std::optional<std::vector<Values>> parts;
  try {
    const int64_t begin =
        rank == 0 ? cut : record_start(*file, cut, quotes_before % 2 != 0);
    const int64_t end =
        rank + 1 == world
            ? file->size()
            : record_start(*file, next_cut, (quotes_before + quotes) % 2 != 0);
    if (begin >= end) {
      parts.emplace();
    } else {
      parts = parse_in_ranges(
          *file, begin, end, default_blocks(), header, columns, options);
    }
  } catch (const c10::Error&) {
    parts.reset();
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
