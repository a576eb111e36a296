#pragma once
// Internal to the CSV reader (csrc/data/csv.cpp): reading the text. The
// Scanner splits it into records and fields (RFC 4180 quoting, any line
// ending, a UTF-8 BOM), parse_number turns a field into a double, and the
// message helpers make input text safe to quote in errors. Everything here
// is inline: the row loop (rows.cpp) must inline the scanner's fast path.

#include <c10/util/Exception.h>
#include <fast_float/fast_float.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace normopt::data::csv {

// --- Message helpers (cold path) ---------------------------------------------

// Makes a piece of input text safe to print: control bytes become \xNN, and
// the result is cut after `max_bytes` input bytes (on a UTF-8 character
// boundary) with "..." appended.
inline std::string printable(std::string_view s, size_t max_bytes) {
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
inline std::string quote(std::string_view s, size_t max_bytes = 60) {
  // Appended, not "\"" + ...: GCC 12 in C++20 mode warns (-Wrestrict, a
  // false positive, GCC bug 105329) on a literal prepended to a string.
  std::string out = "\"";
  out += printable(s, max_bytes);
  out += '"';
  return out;
}

// Undoes RFC 4180 escaping: "" -> ".
inline std::string unescape(std::string_view s) {
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

inline std::string column_list(const std::vector<std::string>& names) {
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

// --- Scanner -----------------------------------------------------------------

// One field of a record, pointing into the input text.
struct Field {
  const char* begin;
  size_t size;
  int64_t line;  // 1-based line where the field starts
  bool escaped;  // quoted and contains "" pairs (needs unescape())
};

// Where a scanner's text lies in the whole input.
struct Piece {
  // 1-based line of the text's first byte.
  int64_t first_line = 1;
  // The text starts the input: a UTF-8 byte order mark there is skipped.
  bool at_start = true;
  // The text ends the input. When false (a buffer of a stream), a record
  // that reaches the end of the text is not read: next_record() returns
  // false with incomplete() set, position() at that record's start, so the
  // caller can append more input and scan again from there.
  bool at_end = true;
};

class Scanner {
 public:
  Scanner(std::string_view text,
          char delimiter,
          const std::string& source,
          Piece piece = {})
      : p_(text.data()),
        end_(text.data() + text.size()),
        delim_(delimiter),
        source_(source),
        line_(piece.first_line),
        at_end_(piece.at_end) {
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (piece.at_start && text.substr(0, kBom.size()) == kBom) {
      p_ += kBom.size();
    }
    for (int c = 0; c < 256; ++c) {
      stop_[c] = false;
    }
    stop_[static_cast<unsigned char>('\n')] = true;
    stop_[static_cast<unsigned char>('\r')] = true;
    stop_[static_cast<unsigned char>(delim_)] = true;
    for (int c = 0; c < 256; ++c) {
      plain_stop_[c] = stop_[c];
    }
    plain_stop_[static_cast<unsigned char>('"')] = true;
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

  // Whether the last next_record() stopped at a record that the text cuts
  // off (only when the text does not end the input, see Piece::at_end).
  bool incomplete() const {
    return incomplete_;
  }

  enum class Plain { kRead, kEnd, kNotPlain };

  // The fast path of reading a record, for plain ones: no '"' anywhere in
  // it, exactly `n_columns` fields, ended by a line ending (or the end of
  // the input). Skips empty lines, then hands each field (trimmed as
  // next_record trims) to `cell(column, begin, end)` and returns kRead, or
  // kEnd at the end of the input. When the record is not plain, or `cell`
  // returns false (a value it cannot take), returns kNotPlain with the
  // position at the record's start: the caller reads it with next_record()
  // and checks it, which gives the exact message. Lines are counted as
  // next_record counts them.
  template <typename Cell>
  Plain next_plain_record(size_t n_columns, Cell&& cell) {
    while (p_ < end_ && (*p_ == '\n' || *p_ == '\r')) {
      if (!at_end_ && p_ + 1 == end_ && *p_ == '\r') {
        return Plain::kNotPlain;
      }
      consume_newline();
    }
    if (p_ >= end_) {
      return Plain::kEnd;
    }
    const char* p = p_;
    for (size_t c = 0;; ++c) {
      const char* b = p;
      while (p < end_ && !plain_stop_[static_cast<unsigned char>(*p)]) {
        ++p;
      }
      if (p < end_ && *p == '"') {
        return Plain::kNotPlain;
      }
      const char* e = p;
      while (b < e && is_blank(*b)) {
        ++b;
      }
      while (e > b && is_blank(e[-1])) {
        --e;
      }
      const bool last = c + 1 == n_columns;
      if (p < end_ && *p == delim_) {
        if (last || !cell(c, b, e)) {
          return Plain::kNotPlain;
        }
        ++p;
        continue;
      }
      // At a line ending or the end of the text.
      if (!last || (p >= end_ && !at_end_) ||
          (!at_end_ && p + 1 == end_ && *p == '\r') || !cell(c, b, e)) {
        return Plain::kNotPlain;
      }
      p_ = p;
      if (p_ < end_) {
        consume_newline();
      }
      return Plain::kRead;
    }
  }

  // Reads the next non-empty record into `fields`; false at end of input
  // (or at an incomplete record). Fully empty lines are skipped.
  bool next_record(std::vector<Field>& fields) {
    while (p_ < end_ && (*p_ == '\n' || *p_ == '\r')) {
      if (!at_end_ && p_ + 1 == end_ && *p_ == '\r') {
        return stop_incomplete(p_, line_);  // CR, or the CR of a CRLF?
      }
      consume_newline();
    }
    if (p_ >= end_) {
      return false;
    }
    const char* const record = p_;
    const int64_t record_line = line_;
    fields.clear();
    for (;;) {
      fields.push_back(next_field(fields.size()));
      if (p_ >= end_) {
        return at_end_ || stop_incomplete(record, record_line);
      }
      if (*p_ == delim_) {
        ++p_;
        continue;
      }
      // Stopped on '\n' or '\r'.
      if (C10_UNLIKELY(!at_end_ && p_ + 1 == end_ && *p_ == '\r')) {
        return stop_incomplete(record, record_line);
      }
      consume_newline();
      return true;
    }
  }

 private:
  bool stop_incomplete(const char* record, int64_t record_line) {
    p_ = record;
    line_ = record_line;
    incomplete_ = true;
    return false;
  }

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
      if (q == nullptr && !at_end_) {
        p_ = end_;  // the input goes on: next_record() stops incomplete
        return f;
      }
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
      if (e == end_ && !at_end_) {
        p_ = end_;  // the message quotes the rest of the line: read it first
        return f;
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
  int64_t line_;
  bool at_end_;
  bool incomplete_ = false;
  const std::vector<std::string>* names_ = nullptr;
  bool stop_[256];
  bool plain_stop_[256];  // stop_ and '"'
};

// --- Number parsing ----------------------------------------------------------

enum class NumberStatus { kOk, kEmpty, kNotNumber, kNonFinite, kOutOfRange };

// Clinger's fast path: a decimal number [-]digits[.digits][(e|E)[+-]digits]
// with at most 15 digits (so its integer m is below 2^53) and a power of ten
// k within [-22, 22] is m * 10^k or m / 10^-k, one IEEE operation on two
// exact doubles, hence correctly rounded. False (and `value` untouched) for
// anything else, as soon as it shows; parse_number then gives the text to
// fast_float. Most numbers in data files are this short, and here they are
// faster than in fast_float's general path (1.85x whole numbers, 1.19x four
// decimals); longer ones are faster in fast_float
// (benchmarks/bench_numbers.cpp, benchmarks/RESULTS.md).
inline bool parse_simple_decimal(const char* p, const char* e, double& value) {
  static constexpr double kPow10[] = {
      1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  constexpr int kMaxDigits = 15;
  const bool negative = p < e && *p == '-';
  p += negative ? 1 : 0;
  uint64_t m = 0;
  int digits = 0;
  int k = 0;
  const char* const first = p;
  while (p < e && static_cast<unsigned>(*p - '0') < 10) {
    if (++digits > kMaxDigits) {
      return false;
    }
    m = m * 10 + static_cast<unsigned>(*p - '0');
    ++p;
  }
  bool any = p > first;
  if (p < e && *p == '.') {
    ++p;
    const char* const fraction = p;
    while (p < e && static_cast<unsigned>(*p - '0') < 10) {
      if (++digits > kMaxDigits) {
        return false;
      }
      m = m * 10 + static_cast<unsigned>(*p - '0');
      ++p;
    }
    k -= static_cast<int>(p - fraction);
    any = any || p > fraction;
  }
  if (!any) {
    return false;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    const bool negative_exponent = p < e && *p == '-';
    p += (p < e && (*p == '-' || *p == '+')) ? 1 : 0;
    const char* const exponent = p;
    int x = 0;
    while (p < e && static_cast<unsigned>(*p - '0') < 10 && p - exponent < 4) {
      x = x * 10 + (*p - '0');
      ++p;
    }
    if (p == exponent) {
      return false;
    }
    k += negative_exponent ? -x : x;
  }
  if (p != e || k < -22 || k > 22) {
    return false;
  }
  const double magnitude = k < 0 ? static_cast<double>(m) / kPow10[-k]
                                 : static_cast<double>(m) * kPow10[k];
  value = negative ? -magnitude : magnitude;
  return true;
}

// Whether [b, e), a number fast_float read as 0, has a nonzero digit before
// its exponent: then it underflowed.
inline bool has_nonzero_mantissa(const char* b, const char* e) {
  for (; b < e && *b != 'e' && *b != 'E'; ++b) {
    if (*b >= '1' && *b <= '9') {
      return true;
    }
  }
  return false;
}

// A field as a double, correctly rounded: short decimals by Clinger's fast
// path, the rest by fast_float (the library libstdc++'s std::from_chars
// builds on, faster called directly: 1.07-1.10x from_chars here). fast_float
// turns overflow into ±inf and underflow into 0 without an error; both are
// reported as out of range here, as std::from_chars does.
inline NumberStatus parse_number(const Field& f, double& value) {
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
  // Longer fields rarely fit the fast path: straight to fast_float.
  if (e - b <= 16 && parse_simple_decimal(b, e, value)) {
    return NumberStatus::kOk;  // finite and in range
  }
  const auto [ptr, ec] = fast_float::from_chars(b, e, value);
  if (ec != std::errc() || ptr != e) {
    return NumberStatus::kNotNumber;
  }
  if (std::isinf(value)) {  // "inf"/"infinity" are spelled with an i
    return std::find_if(b, e, [](char c) { return c == 'i' || c == 'I'; }) == e
               ? NumberStatus::kOutOfRange
               : NumberStatus::kNonFinite;
  }
  if (std::isnan(value)) {
    return NumberStatus::kNonFinite;
  }
  if (value == 0 && has_nonzero_mantissa(b, e)) {
    return NumberStatus::kOutOfRange;
  }
  return NumberStatus::kOk;
}

// Upper bound on the number of data rows left in [p, end): a row needs a line
// ending (except the last) and, with K columns, at least 2K-1 bytes.
inline size_t estimate_rows(const char* p, const char* end, size_t columns) {
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

}  // namespace normopt::data::csv
