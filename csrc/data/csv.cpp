#include <normopt/data/csv.h>

#include "../util/files.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <system_error>
#include <unordered_map>

namespace normopt::data {

namespace {

// --- Message helpers (cold path) ---------------------------------------------

// Makes a piece of input text safe to print: control bytes become \xNN, and
// the result is cut after `max_bytes` input bytes (on a UTF-8 character
// boundary) with "..." appended.
std::string printable(std::string_view s, size_t max_bytes) {
  bool truncated = false;
  if (s.size() > max_bytes) {
    size_t cut = max_bytes;
    // Do not split a UTF-8 sequence: back off over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    s = s.substr(0, cut);
    truncated = true;
  }
  std::string out;
  out.reserve(s.size() + 8);
  static const char* hex = "0123456789ABCDEF";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  if (truncated) {
    out += "...";
  }
  return out;
}

// Not named `quoted`: for a std::string argument, argument-dependent lookup
// would prefer std::quoted (<iomanip>), which neither escapes control bytes
// nor truncates.
std::string quote(std::string_view s, size_t max_bytes = 60) {
  // Appended, not "\"" + ...: GCC 12 in C++20 mode warns (-Wrestrict, a
  // false positive, GCC bug 105329) on a literal prepended to a string.
  std::string out = "\"";
  out += printable(s, max_bytes);
  out += '"';
  return out;
}

// Undoes RFC 4180 escaping: "" -> ".
std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    if (s[i] == '"' && i + 1 < s.size() && s[i + 1] == '"') {
      ++i;
    }
  }
  return out;
}

std::string column_list(const std::vector<std::string>& names) {
  constexpr size_t kMaxListed = 50;
  std::ostringstream os;
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) {
    os << (i ? ", " : "") << (i + 1) << " " << quote(names[i]);
  }
  if (names.size() > kMaxListed) {
    os << ", ... (" << names.size() - kMaxListed << " more)";
  }
  return os.str();
}

// --- Scanner
// ------------------------------------------------------------------

// One field of a record, pointing into the input text.
struct Field {
  const char* begin;
  size_t size;
  int64_t line;  // 1-based line where the field starts
  bool escaped;  // quoted and contains "" pairs (needs unescape())
};

class Scanner {
 public:
  Scanner(std::string_view text, char delimiter, const std::string& source)
      : p_(text.data()),
        end_(text.data() + text.size()),
        delim_(delimiter),
        source_(source) {
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (text.substr(0, kBom.size()) == kBom) {
      p_ += kBom.size();
    }
    for (int c = 0; c < 256; ++c) {
      stop_[c] = false;
    }
    stop_[static_cast<unsigned char>('\n')] = true;
    stop_[static_cast<unsigned char>('\r')] = true;
    stop_[static_cast<unsigned char>(delim_)] = true;
  }

  int64_t line() const {
    return line_;
  }
  const char* position() const {
    return p_;
  }
  const char* end() const {
    return end_;
  }

  // Header names, used to name columns in scanner errors once known.
  void set_names(const std::vector<std::string>* names) {
    names_ = names;
  }

  // "<source>, line L, column C ("name")" for error messages.
  std::string where(int64_t line, size_t column_index) const {
    std::ostringstream os;
    os << "CSV error in " << source_ << " at line " << line << ", column "
       << (column_index + 1);
    if (names_ != nullptr && column_index < names_->size()) {
      os << " (" << quote((*names_)[column_index]) << ")";
    } else if (names_ != nullptr) {
      os << " (beyond the " << names_->size() << " header columns)";
    }
    return os.str();
  }

  // Reads the next non-empty record into `fields`; false at end of input.
  // Fully empty lines are skipped.
  bool next_record(std::vector<Field>& fields) {
    while (p_ < end_ && (*p_ == '\n' || *p_ == '\r')) {
      consume_newline();
    }
    if (p_ >= end_) {
      return false;
    }
    fields.clear();
    for (;;) {
      fields.push_back(next_field(fields.size()));
      if (p_ >= end_) {
        return true;
      }
      if (*p_ == delim_) {
        ++p_;
        continue;
      }
      consume_newline();  // stopped on '\n' or '\r'
      return true;
    }
  }

 private:
  bool is_blank(char c) const {
    return (c == ' ' || c == '\t') && c != delim_;
  }

  // p_ is on '\n' or '\r': steps over one line ending (LF, CRLF or CR).
  void consume_newline() {
    if (*p_ == '\r' && p_ + 1 < end_ && p_[1] == '\n') {
      ++p_;
    }
    ++p_;
    ++line_;
  }

  Field next_field(size_t column_index) {
    while (p_ < end_ && is_blank(*p_)) {
      ++p_;
    }
    Field f{p_, 0, line_, false};
    if (p_ < end_ && *p_ == '"') {
      return quoted_field(column_index, f);
    }
    const char* b = p_;
    while (p_ < end_ && !stop_[static_cast<unsigned char>(*p_)]) {
      ++p_;
    }
    const char* e = p_;
    while (e > b && is_blank(e[-1])) {
      --e;
    }
    f.begin = b;
    f.size = static_cast<size_t>(e - b);
    return f;
  }

  Field quoted_field(size_t column_index, Field f) {
    const int64_t open_line = line_;
    ++p_;  // opening quote
    const char* b = p_;
    const char* close = nullptr;
    for (;;) {
      const void* q = std::memchr(p_, '"', static_cast<size_t>(end_ - p_));
      TORCH_CHECK(
          q != nullptr,
          where(open_line, column_index),
          ": unterminated quoted field: the opening quote is never closed, "
          "so the rest of the input was read as one field. Close the field "
          "with a '\"', or write a literal quote inside quotes as '\"\"'.");
      const char* qq = static_cast<const char*>(q);
      count_lines(p_, qq);
      p_ = qq + 1;
      if (p_ < end_ && *p_ == '"') {  // "" = escaped quote
        f.escaped = true;
        ++p_;
        continue;
      }
      close = qq;
      break;
    }
    f.begin = b;
    f.size = static_cast<size_t>(close - b);
    while (p_ < end_ && is_blank(*p_)) {
      ++p_;
    }
    if (p_ < end_ && !stop_[static_cast<unsigned char>(*p_)]) {
      const char* e = p_;
      while (e < end_ && *e != '\n' && *e != '\r') {
        ++e;
      }
      TORCH_CHECK(
          false,
          where(line_, column_index),
          ": unexpected text ",
          quote(std::string_view(p_, static_cast<size_t>(e - p_)), 20),
          " after the closing quote of a quoted field. Put the whole field "
          "inside the quotes, and write a literal quote as '\"\"'.");
    }
    return f;
  }

  // Counts line endings inside a quoted field.
  void count_lines(const char* b, const char* e) {
    for (const char* c = b; c < e; ++c) {
      if (*c == '\n') {
        ++line_;
      } else if (*c == '\r' && !(c + 1 < e && c[1] == '\n')) {
        ++line_;
      }
    }
  }

  const char* p_;
  const char* end_;
  char delim_;
  const std::string& source_;
  int64_t line_ = 1;
  const std::vector<std::string>* names_ = nullptr;
  bool stop_[256];
};

// --- Number parsing
// ------------------------------------------------------------

enum class NumberStatus { kOk, kEmpty, kNotNumber, kNonFinite, kOutOfRange };

NumberStatus parse_number(const Field& f, double& value) {
  if (f.size == 0) {
    return NumberStatus::kEmpty;
  }
  if (f.escaped) {
    return NumberStatus::kNotNumber;  // contains a '"'
  }
  const char* b = f.begin;
  const char* e = f.begin + f.size;
  if (*b == '+') {  // from_chars takes '-' but not '+'
    ++b;
    if (b == e || *b == '-' || *b == '+') {
      return NumberStatus::kNotNumber;
    }
  }
  const auto [ptr, ec] = std::from_chars(b, e, value);
  if (ec == std::errc::result_out_of_range && ptr == e) {
    return NumberStatus::kOutOfRange;
  }
  if (ec != std::errc() || ptr != e) {
    return NumberStatus::kNotNumber;
  }
  if (!std::isfinite(value)) {
    return NumberStatus::kNonFinite;
  }
  return NumberStatus::kOk;
}

// Upper bound on the number of data rows left in [p, end): a row needs a line
// ending (except the last) and, with K columns, at least 2K-1 bytes.
size_t estimate_rows(const char* p, const char* end, size_t columns) {
  size_t newlines = 0;
  for (const char* c = p; c < end;) {
    const void* n = std::memchr(c, '\n', static_cast<size_t>(end - c));
    if (n == nullptr) {
      break;
    }
    ++newlines;
    c = static_cast<const char*>(n) + 1;
  }
  const size_t by_bytes = static_cast<size_t>(end - p) / (2 * columns - 1) + 1;
  return std::min(newlines + 1, by_bytes);
}

}  // namespace

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

  Scanner scanner(text, delim, source);
  std::vector<Field> fields;

  // --- Header ---------------------------------------------------------------
  TORCH_CHECK(
      scanner.next_record(fields),
      "CSV error in ",
      source,
      " at line 1, column 1: the input is empty; a header row of column "
      "names is expected, then one row per sample. Check that the right "
      "file was given and that it was fully written.");
  const int64_t header_line = fields.front().line;
  std::vector<std::string> names;
  names.reserve(fields.size());
  std::unordered_map<std::string_view, size_t> index_of;
  index_of.reserve(fields.size() * 2);
  for (size_t c = 0; c < fields.size(); ++c) {
    const Field& f = fields[c];
    const std::string_view raw(f.begin, f.size);
    names.push_back(f.escaped ? unescape(raw) : std::string(raw));
    TORCH_CHECK(
        !names.back().empty(),
        scanner.where(f.line, c),
        ": the header has an empty column name. Give every column a name "
        "(a trailing delimiter at the end of the header also makes an empty "
        "column; a pandas index written without a name does too: save with "
        "index=False).");
  }
  scanner.set_names(&names);
  for (size_t c = 0; c < names.size(); ++c) {
    const auto [it, inserted] = index_of.emplace(names[c], c);
    TORCH_CHECK(inserted,
                scanner.where(fields[c].line, c),
                ": duplicate column name ",
                quote(names[c]),
                " in the header (also column ",
                it->second + 1,
                "). Rename one of them so every column name is unique.");
  }
  const size_t n_columns = names.size();

  // --- Column selection ------------------------------------------------------
  const auto header_where = [&]() {
    std::ostringstream os;
    os << "CSV error in " << source << " at line " << header_line
       << " (header)";
    return os.str();
  };
  size_t target_col = n_columns - 1;
  if (!options.target().empty()) {
    const auto it = index_of.find(options.target());
    TORCH_CHECK(
        it != index_of.end(),
        header_where(),
        ": target column ",
        quote(options.target()),
        " not found. Available columns: ",
        column_list(names),
        ". Pass one of these names to CsvOptions::target (or \"\" for the "
        "last column).");
    target_col = it->second;
  }
  std::vector<size_t> feature_cols;
  if (options.features().empty()) {
    for (size_t c = 0; c < n_columns; ++c) {
      if (c != target_col) {
        feature_cols.push_back(c);
      }
    }
  } else {
    std::vector<bool> used(n_columns, false);
    for (const std::string& name : options.features()) {
      const auto it = index_of.find(name);
      TORCH_CHECK(it != index_of.end(),
                  header_where(),
                  ": feature column ",
                  quote(name),
                  " not found. Available columns: ",
                  column_list(names),
                  ". Fix the name in CsvOptions::features.");
      TORCH_CHECK(
          it->second != target_col,
          header_where(),
          ", column ",
          it->second + 1,
          ": ",
          quote(name),
          " is the target column and cannot also be a feature. Remove it "
          "from CsvOptions::features or choose another target.");
      TORCH_CHECK(
          !used[it->second],
          header_where(),
          ", column ",
          it->second + 1,
          ": feature column ",
          quote(name),
          " is listed twice in CsvOptions::features. List each column once.");
      used[it->second] = true;
      feature_cols.push_back(it->second);
    }
  }
  TORCH_CHECK(!feature_cols.empty(),
              header_where(),
              ": no feature columns: the only column, ",
              quote(names[target_col]),
              ", is the target. Add feature columns to the file.");
  const size_t n_features = feature_cols.size();

  // slot_of[c]: where column c goes: feature index, kTarget, or kSkip.
  constexpr int64_t kSkip = -2;
  constexpr int64_t kTarget = -1;
  std::vector<int64_t> slot_of(n_columns, kSkip);
  for (size_t i = 0; i < n_features; ++i) {
    slot_of[feature_cols[i]] = static_cast<int64_t>(i);
  }
  slot_of[target_col] = kTarget;
  // Selected columns in file order, so errors name the leftmost bad cell.
  std::vector<std::pair<size_t, int64_t>> selected;
  for (size_t c = 0; c < n_columns; ++c) {
    if (slot_of[c] != kSkip) {
      selected.emplace_back(c, slot_of[c]);
    }
  }

  // --- Data rows (parsed fully before any tensor is made) --------------------
  const size_t row_bound =
      estimate_rows(scanner.position(), scanner.end(), n_columns);
  std::vector<double> feature_values;
  std::vector<double> target_values;
  feature_values.reserve(row_bound * n_features);
  target_values.reserve(row_bound);
  const bool to_float = dtype == at::kFloat;
  // Doubles at or above 2^128 - 2^103 round to infinity as float (the
  // comparison avoids an out-of-range float conversion, which is UB).
  const double kFloatRoundsToInf = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);

  while (scanner.next_record(fields)) {
    if (fields.size() != n_columns) {
      const bool too_many = fields.size() > n_columns;
      const Field& at_field = too_many ? fields[n_columns] : fields.back();
      TORCH_CHECK(
          false,
          scanner.where(at_field.line, too_many ? n_columns : fields.size()),
          ": ragged row: found ",
          fields.size(),
          " field(s), expected ",
          n_columns,
          " as in the header. Make every row have one field per header "
          "column (check for a stray or missing delimiter",
          (delim == ',' ? ", or a decimal comma: quote such cells" : ""),
          ").");
    }
    const size_t base = feature_values.size();
    feature_values.resize(base + n_features);
    for (const auto& [c, slot] : selected) {
      const Field& f = fields[c];
      double v = 0.0;
      const NumberStatus status = parse_number(f, v);
      if (C10_UNLIKELY(status != NumberStatus::kOk)) {
        const std::string text_of =
            quote(f.escaped ? unescape(std::string_view(f.begin, f.size))
                            : std::string(f.begin, f.size),
                  40);
        TORCH_CHECK(
            status != NumberStatus::kEmpty,
            scanner.where(f.line, c),
            ": missing value (empty cell). Every target and feature cell "
            "must hold a number: fill it in or remove the row.");
        TORCH_CHECK(
            status != NumberStatus::kNonFinite,
            scanner.where(f.line, c),
            ": non-finite value ",
            text_of,
            ". Only finite numbers are accepted: replace it with a number "
            "or remove the row.");
        TORCH_CHECK(status != NumberStatus::kOutOfRange,
                    scanner.where(f.line, c),
                    ": value ",
                    text_of,
                    " is out of the range of float64. Rescale the column or "
                    "remove the row.");
        TORCH_CHECK(
            false,
            scanner.where(f.line, c),
            ": not a number: ",
            text_of,
            ". Cells of target and feature columns must be plain numbers "
            "like 3, -0.5 or 1e-3; fix the cell, or leave the column out "
            "of CsvOptions::features.");
      }
      TORCH_CHECK(
          !to_float || std::abs(v) < kFloatRoundsToInf,
          scanner.where(f.line, c),
          ": value ",
          quote(std::string_view(f.begin, f.size), 40),
          " overflows float32. Read with CsvOptions().dtype(at::kDouble) or "
          "rescale the column.");
      if (slot == kTarget) {
        target_values.push_back(v);
      } else {
        feature_values[base + static_cast<size_t>(slot)] = v;
      }
    }
  }
  const size_t n_rows = target_values.size();
  TORCH_CHECK(
      n_rows > 0,
      "CSV error in ",
      source,
      " at line ",
      std::max<int64_t>(scanner.line(), header_line + 1),
      ", column 1: the header (line ",
      header_line,
      ") is followed by no data rows. Add at least one row of numbers.");

  // --- Tensors
  // ----------------------------------------------------------------
  const auto tensor_options = at::TensorOptions().dtype(dtype);
  Table table;
  table.features = at::empty(
      {static_cast<int64_t>(n_rows), static_cast<int64_t>(n_features)},
      tensor_options);
  table.targets = at::empty({static_cast<int64_t>(n_rows), 1}, tensor_options);
  if (to_float) {
    float* fd = table.features.data_ptr<float>();
    for (size_t i = 0; i < feature_values.size(); ++i) {
      fd[i] = static_cast<float>(feature_values[i]);
    }
    float* td = table.targets.data_ptr<float>();
    for (size_t i = 0; i < n_rows; ++i) {
      td[i] = static_cast<float>(target_values[i]);
    }
  } else {
    std::memcpy(table.features.data_ptr<double>(),
                feature_values.data(),
                feature_values.size() * sizeof(double));
    std::memcpy(table.targets.data_ptr<double>(),
                target_values.data(),
                n_rows * sizeof(double));
  }
  table.feature_names.reserve(n_features);
  for (size_t c : feature_cols) {
    table.feature_names.push_back(names[c]);
  }
  table.target_name = names[target_col];
  return table;
}

Table read_csv(const std::string& path, const CsvOptions& options) {
  const std::string text = util::read_file(path, "CSV error");
  return parse_csv(text, options, path);
}

}  // namespace normopt::data
