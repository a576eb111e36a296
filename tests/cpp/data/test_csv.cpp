#include "../common.h"

#include <normopt/data/csv.h>
#include <normopt/data/dataset.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <torch/data.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace normopt::data;
using normopt::test::error_of;

#define EXPECT_CONTAINS(message, part)                          \
  EXPECT_NE(std::string(message).find(part), std::string::npos) \
      << "message: " << (message) << "\nmissing: " << (part)

at::Tensor doubles(std::vector<double> v, std::vector<int64_t> shape) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble))
      .reshape(shape)
      .contiguous();
}

const char* const kPlain =
    "x1,x2,y\n"
    "1.5,2,10.25\n"
    "-3,4.5e1,20\n"
    "0.125,-0,1e-3\n";

// --- Values ------------------------------------------------------------------

TEST(Csv, Parse_EveryElementExact_Float32) {
  const Table t = parse_csv(kPlain);
  ASSERT_EQ(t.features.scalar_type(), at::kFloat);
  ASSERT_EQ(t.targets.scalar_type(), at::kFloat);
  const at::Tensor x = at::tensor({1.5f, 2.0f, -3.0f, 45.0f, 0.125f, -0.0f},
                                  at::TensorOptions().dtype(at::kFloat))
                           .reshape({3, 2});
  const at::Tensor y =
      at::tensor({10.25f, 20.0f, 1e-3f}, at::TensorOptions().dtype(at::kFloat))
          .reshape({3, 1});
  EXPECT_TRUE(at::equal(t.features, x)) << t.features;
  EXPECT_TRUE(at::equal(t.targets, y)) << t.targets;
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"x1", "x2"}));
  EXPECT_EQ(t.target_name, "y");
  EXPECT_EQ(t.size(), 3);
}

TEST(Csv, Parse_TensorsAreCpuContiguous_Shapes) {
  const Table t = parse_csv(kPlain, CsvOptions().dtype(at::kDouble));
  EXPECT_EQ(t.features.sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(t.targets.sizes(), (std::vector<int64_t>{3, 1}));
  EXPECT_TRUE(t.features.is_contiguous());
  EXPECT_TRUE(t.targets.is_contiguous());
  EXPECT_TRUE(t.features.device().is_cpu());
  EXPECT_TRUE(t.targets.device().is_cpu());
  EXPECT_EQ(t.features.scalar_type(), at::kDouble);
}

TEST(Csv, Parse_Float64_DecimalsSurviveExactly) {
  const Table t = parse_csv(
      "a,b,y\n0.1,0.2,0.3\n1e-300,-2.5e10,123456789.123456789\n"
      "2.2250738585072014e-308,1.7976931348623157e308,-0.7\n",
      CsvOptions().dtype(at::kDouble));
  const at::Tensor x = doubles({0.1,
                                0.2,
                                1e-300,
                                -2.5e10,
                                2.2250738585072014e-308,
                                1.7976931348623157e308},
                               {3, 2});
  const at::Tensor y = doubles({0.3, 123456789.123456789, -0.7}, {3, 1});
  EXPECT_TRUE(at::equal(t.features, x)) << t.features;
  EXPECT_TRUE(at::equal(t.targets, y)) << t.targets;
  EXPECT_EQ(t.features[0][0].item<double>(), 0.1);
}

TEST(Csv, Parse_Float32_RoundedOnceFromDouble) {
  const Table t = parse_csv("a,y\n0.1,16777217\n");
  EXPECT_EQ(t.features[0][0].item<float>(), 0.1f);
  EXPECT_EQ(t.targets[0][0].item<float>(), 16777216.0f);
}

TEST(Csv, Numbers_SignsExponentsAndLeadingDot) {
  const Table t = parse_csv("a,b,c,y\n+1.5,-.5,.25,1E3\n+0,5.,-1e+2,+2e-2\n",
                            CsvOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.features,
                        doubles({1.5, -0.5, 0.25, 0.0, 5.0, -100.0}, {2, 3})))
      << t.features;
  EXPECT_TRUE(at::equal(t.targets, doubles({1000.0, 0.02}, {2, 1})));
}

// --- Column selection --------------------------------------------------------

TEST(Csv, Target_Default_IsLastColumn) {
  const Table t = parse_csv("a,b,c\n1,2,3\n4,5,6\n");
  EXPECT_EQ(t.target_name, "c");
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(at::equal(t.targets, at::tensor({3.0f, 6.0f}).reshape({2, 1})));
}

TEST(Csv, Target_ByName_FeaturesAreTheRestInFileOrder) {
  const Table t = parse_csv("a,b,c\n1,2,3\n4,5,6\n",
                            CsvOptions().target("a").dtype(at::kDouble));
  EXPECT_EQ(t.target_name, "a");
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(at::equal(t.targets, doubles({1, 4}, {2, 1})));
  EXPECT_TRUE(at::equal(t.features, doubles({2, 3, 5, 6}, {2, 2})));
}

TEST(Csv, Features_ByName_InRequestedOrder) {
  const Table t = parse_csv(
      "a,b,c,d\n1,2,3,4\n5,6,7,8\n",
      CsvOptions().target("b").features({"d", "a"}).dtype(at::kDouble));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"d", "a"}));
  EXPECT_EQ(t.target_name, "b");
  EXPECT_TRUE(at::equal(t.features, doubles({4, 1, 8, 5}, {2, 2})));
  EXPECT_TRUE(at::equal(t.targets, doubles({2, 6}, {2, 1})));
}

TEST(Csv, Features_UnselectedColumns_MayHoldText) {
  const Table t = parse_csv("id,x,date,y\nabc,1,2024-01-01,2\n,3,\"x,y\",4\n",
                            CsvOptions().features({"x"}).dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.features, doubles({1, 3}, {2, 1})));
  EXPECT_TRUE(at::equal(t.targets, doubles({2, 4}, {2, 1})));
}

// --- Dialect -----------------------------------------------------------------

TEST(Csv, Dialect_CrlfBomQuotedSpaces_SameAsPlain) {
  const std::string fancy =
      "\xEF\xBB\xBF\"x1\", x2 ,\"y\"\r\n"
      "\"1.5\",  2\t,10.25\r\n"
      "-3 ,\"4.5e1\" , \"20\"\r\n"
      "\r\n"
      "0.125,-0,1e-3";
  const auto options = CsvOptions().dtype(at::kDouble);
  const Table plain = parse_csv(kPlain, options);
  const Table other = parse_csv(fancy, options);
  EXPECT_TRUE(at::equal(plain.features, other.features)) << other.features;
  EXPECT_TRUE(at::equal(plain.targets, other.targets)) << other.targets;
  EXPECT_EQ(plain.feature_names, other.feature_names);
  EXPECT_EQ(plain.target_name, other.target_name);
}

TEST(Csv, Dialect_LoneCrLineEndings_Accepted) {
  const Table t = parse_csv("a,y\r1,2\r3,4\r", CsvOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.features, doubles({1, 3}, {2, 1})));
}

TEST(Csv, Dialect_FinalLineWithoutNewline_Read) {
  const Table t = parse_csv("a,y\n1,2\n3,4", CsvOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.targets, doubles({2, 4}, {2, 1})));
}

TEST(Csv, Dialect_BlankLines_IgnoredAnywhere) {
  const Table t = parse_csv("\n\na,y\n\n1,2\n\r\n\n3,4\n\n\n",
                            CsvOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.features, doubles({1, 3}, {2, 1})));
  EXPECT_TRUE(at::equal(t.targets, doubles({2, 4}, {2, 1})));
}

TEST(Csv, Dialect_QuotedHeader_DelimiterEscapedQuoteAndNewline) {
  const Table t =
      parse_csv("\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\n1,2,3\n",
                CsvOptions().target("two\nlines"));
  EXPECT_EQ(t.feature_names, (std::vector<std::string>{"a,b", "say \"hi\""}));
  EXPECT_EQ(t.target_name, "two\nlines");
  EXPECT_TRUE(at::equal(t.targets, at::tensor({3.0f}).reshape({1, 1})));
}

TEST(Csv, Dialect_SemicolonAndTabDelimiters) {
  const auto d = CsvOptions().dtype(at::kDouble);
  const Table semi =
      parse_csv("a;y\n1.5;2\n3;4\n", CsvOptions(d).delimiter(';'));
  const Table tab =
      parse_csv("a\ty\n 1.5\t2\n3 \t4\n", CsvOptions(d).delimiter('\t'));
  EXPECT_TRUE(at::equal(semi.features, doubles({1.5, 3}, {2, 1})));
  EXPECT_TRUE(at::equal(tab.features, semi.features));
  EXPECT_TRUE(at::equal(tab.targets, semi.targets));
}

// --- Errors: each names source, line and column ------------------------------

TEST(Csv, MissingCell_NamesLineAndColumn) {
  const std::string m =
      error_of([] { parse_csv("x1,x2,y\n1,2,3\n4,,6\n", {}, "data.csv"); });
  EXPECT_CONTAINS(m, "data.csv");
  EXPECT_CONTAINS(m, "line 3, column 2 (\"x2\")");
  EXPECT_CONTAINS(m, "missing value");
}

TEST(Csv, MissingCell_QuotedEmptyAndSpaces_AlsoMissing) {
  EXPECT_CONTAINS(error_of([] { parse_csv("a,y\n1,\"\"\n"); }),
                  "line 2, column 2 (\"y\"): missing value");
  EXPECT_CONTAINS(error_of([] { parse_csv("a,y\n   ,1\n"); }),
                  "line 2, column 1 (\"a\"): missing value");
}

TEST(Csv, NonNumeric_QuotesTheTextTruncated) {
  const std::string m =
      error_of([] { parse_csv("a,price\n1,2\n3,12 USD\n", {}, "shop.csv"); });
  EXPECT_CONTAINS(m, "shop.csv at line 3, column 2 (\"price\")");
  EXPECT_CONTAINS(m, "not a number: \"12 USD\"");

  const std::string long_text(100, 'z');
  const std::string m2 =
      error_of([&] { parse_csv("a,y\n" + long_text + ",1\n"); });
  EXPECT_CONTAINS(m2, "line 2, column 1 (\"a\")");
  // (Built by appending: GCC 12's C++20 mode warns falsely on a literal
  // prepended to a string, GCC bug 105329.)
  std::string cut(1, '"');
  cut += std::string(40, 'z') + "...\"";
  EXPECT_CONTAINS(m2, cut);
  EXPECT_EQ(m2.find(std::string(41, 'z')), std::string::npos) << m2;
}

TEST(Csv, NonNumeric_HexCommaAndDoubleSign_Rejected) {
  for (const char* cell : {"0x10", "\"1,5\"", "+-1", "1.2.3", "--1", "e5"}) {
    const std::string m =
        error_of([&] { parse_csv(std::string("a,y\n1,") + cell + "\n"); });
    EXPECT_CONTAINS(m, "line 2, column 2 (\"y\"): not a number");
  }
}

TEST(Csv, NonFinite_NanAndInf_Rejected) {
  for (const char* cell : {"nan", "NaN", "inf", "-inf", "Infinity"}) {
    const std::string m =
        error_of([&] { parse_csv(std::string("a,y\n1,2\n") + cell + ",3\n"); });
    EXPECT_CONTAINS(m, "line 3, column 1 (\"a\"): non-finite value");
    EXPECT_CONTAINS(m, cell);
  }
}

TEST(Csv, OutOfRange_Float64_Rejected) {
  const std::string m = error_of([] { parse_csv("a,y\n1,1e999\n"); });
  EXPECT_CONTAINS(m, "line 2, column 2 (\"y\")");
  EXPECT_CONTAINS(m, "out of the range of float64");
}

TEST(Csv, OutOfRange_Float32_RejectedButFineAsFloat64) {
  const std::string m = error_of([] { parse_csv("a,y\n1e39,1\n"); });
  EXPECT_CONTAINS(m, "line 2, column 1 (\"a\")");
  EXPECT_CONTAINS(m, "overflows float32");
  const Table t = parse_csv("a,y\n1e39,1\n", CsvOptions().dtype(at::kDouble));
  EXPECT_EQ(t.features[0][0].item<double>(), 1e39);
  // FLT_MAX itself is fine as float32.
  const Table f = parse_csv("a,y\n3.4028234663852886e38,1\n");
  EXPECT_EQ(f.features[0][0].item<float>(), std::numeric_limits<float>::max());
}

// Malformed records: the message names the source, the line and column
// (with the column's name) and what was wrong. A line of spaces is a
// record, not a blank line.
TEST(Csv, MalformedRecords_SayWhereAndWhat) {
  const struct {
    const char* text;
    const char* source;
    std::vector<std::string> needles;
  } cases[] = {
      {"a,b,y\n1,2,3\n4,5\n",
       "r.csv",
       {"r.csv at line 3, column 3 (\"y\")", "found 2 field(s), expected 3"}},
      {"a,y\n1,2\n3,4,5,6\n",
       "<memory>",
       {"line 3, column 3 (beyond the 2 header columns)",
        "found 4 field(s), expected 2"}},
      {"a,y\n1,2\n   \n3,4\n",
       "<memory>",
       {"line 3, column 2 (\"y\")", "found 1 field(s), expected 2"}},
      {"a,y\n1,2\n3,\"4\n5,6\n",
       "q.csv",
       {"q.csv at line 3, column 2 (\"y\")", "unterminated quoted field"}},
      {"a,\"y\n1,2\n",
       "<memory>",
       {"line 1, column 2", "unterminated quoted field"}},
      {"a,y\n\"1\"2,3\n",
       "<memory>",
       {"line 2, column 1 (\"a\")", "after the closing quote"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string m = error_of([&] { parse_csv(c.text, {}, c.source); });
    for (const auto& needle : c.needles) {
      EXPECT_CONTAINS(m, needle);
    }
  }
}

TEST(Csv, EmptyInput_Errors) {
  for (const char* text : {"", "\xEF\xBB\xBF", "\n\r\n\n"}) {
    const std::string m = error_of([&] { parse_csv(text, {}, "e.csv"); });
    EXPECT_CONTAINS(m, "e.csv at line 1, column 1: the input is empty");
  }
}

TEST(Csv, HeaderOnly_NoDataRows_Errors) {
  for (const char* text : {"a,y", "a,y\n", "a,y\r\n\r\n"}) {
    const std::string m = error_of([&] { parse_csv(text, {}, "h.csv"); });
    EXPECT_CONTAINS(m, "h.csv at line");
    EXPECT_CONTAINS(m, "column 1");
    EXPECT_CONTAINS(m, "no data rows");
  }
  EXPECT_CONTAINS(error_of([] { parse_csv("a,y\n"); }), "at line 2, column 1");
}

TEST(Csv, MissingTarget_ListsAvailableColumns) {
  const std::string m = error_of([] {
    parse_csv("a,b,c\n1,2,3\n", CsvOptions().target("price"), "t.csv");
  });
  EXPECT_CONTAINS(m, "t.csv at line 1 (header)");
  EXPECT_CONTAINS(m, "target column \"price\" not found");
  EXPECT_CONTAINS(m, "1 \"a\", 2 \"b\", 3 \"c\"");
}

TEST(Csv, UnknownFeature_ListsAvailableColumns) {
  const std::string m = error_of([] {
    parse_csv("a,b,c\n1,2,3\n", CsvOptions().features({"a", "zz"}), "f.csv");
  });
  EXPECT_CONTAINS(m, "f.csv at line 1 (header)");
  EXPECT_CONTAINS(m, "feature column \"zz\" not found");
  EXPECT_CONTAINS(m, "1 \"a\", 2 \"b\", 3 \"c\"");
}

TEST(Csv, Feature_IsTheTarget_Errors) {
  const std::string m = error_of([] {
    parse_csv("a,b,c\n1,2,3\n", CsvOptions().features({"a", "c"}));
  });
  EXPECT_CONTAINS(m, "line 1 (header), column 3");
  EXPECT_CONTAINS(m, "is the target column");
}

TEST(Csv, Feature_ListedTwice_Errors) {
  const std::string m = error_of([] {
    parse_csv("a,b,c\n1,2,3\n", CsvOptions().features({"b", "a", "b"}));
  });
  EXPECT_CONTAINS(m, "line 1 (header), column 2");
  EXPECT_CONTAINS(m, "listed twice");
}

TEST(Csv, OnlyTargetColumn_NoFeatures_Errors) {
  const std::string m = error_of([] { parse_csv("y\n1\n"); });
  EXPECT_CONTAINS(m, "line 1 (header)");
  EXPECT_CONTAINS(m, "no feature columns");
}

TEST(Csv, DuplicateHeaderName_NamesBothColumns) {
  const std::string m =
      error_of([] { parse_csv("a,b,a,y\n1,2,3,4\n", {}, "d.csv"); });
  EXPECT_CONTAINS(m, "d.csv at line 1, column 3 (\"a\")");
  EXPECT_CONTAINS(m, "duplicate column name \"a\"");
  EXPECT_CONTAINS(m, "also column 1");
}

TEST(Csv, EmptyHeaderName_Errors) {
  const std::string m = error_of([] { parse_csv(",a,y\n0,1,2\n"); });
  EXPECT_CONTAINS(m, "line 1, column 1");
  EXPECT_CONTAINS(m, "empty column name");
}

// Regressions found by tests/fuzz/csv_fuzzer: column names in messages went
// through std::quoted (argument-dependent lookup preferred it to the
// reader's own helper for std::string arguments), so their control bytes were
// printed raw -- a NUL ended what() before the reason -- and long names were
// not cut.
TEST(Csv, ColumnNameInMessage_ControlBytesEscaped) {
  using namespace std::string_literals;
  const std::string m = error_of([] { parse_csv("x\0\x01,y\n1e39,1\n"s); });
  EXPECT_CONTAINS(m,
                  "line 2, column 1 (\"x\\x00\\x01\"): value \"1e39\" "
                  "overflows float32");
}

TEST(Csv, ColumnNameInMessage_LongNameTruncated) {
  const std::string name(100, 'n');
  const std::string m = error_of([&] { parse_csv(name + ",y\nq,1\n"); });
  EXPECT_CONTAINS(m,
                  "line 2, column 1 (\"" + std::string(60, 'n') +
                      "...\"): not a number: \"q\"");
  EXPECT_EQ(m.find(std::string(61, 'n')), std::string::npos) << m;
}

TEST(Csv, ColumnNameInMessage_QuoteAndBackslashVerbatim) {
  // The header cell "a""b\" is the name a"b\ ; it is printed as it is.
  const std::string m = error_of([] { parse_csv("\"a\"\"b\\\",y\nq,1\n"); });
  EXPECT_CONTAINS(m, "line 2, column 1 (\"a\"b\\\"): not a number");
}

TEST(Csv, MissingTarget_NamesInListAndOptionEscaped) {
  const std::string m = error_of(
      [] { parse_csv("a\x1b[1m,y\n1,2\n", CsvOptions().target("p\r")); });
  EXPECT_CONTAINS(m, "target column \"p\\x0D\" not found");
  EXPECT_CONTAINS(m, "1 \"a\\x1B[1m\", 2 \"y\"");
}

TEST(Csv, LineNumbers_CountCrlfBlankAndQuotedNewlines) {
  // Line 1 header, 2 row, 3 blank, 4-5 a quoted newline in an unselected
  // column, 6 the bad row.
  const std::string m = error_of([] {
    parse_csv("id,a,y\r\nr1,1,2\r\n\r\n\"r\n2\",3,4\r\nr3,x,6\r\n",
              CsvOptions().features({"a"}));
  });
  EXPECT_CONTAINS(m, "line 6, column 2 (\"a\"): not a number: \"x\"");
}

TEST(Csv, InvalidDtype_Errors) {
  const std::string m = error_of(
      [] { parse_csv("a,y\n1,2\n", CsvOptions().dtype(at::kInt), "dt.csv"); });
  EXPECT_CONTAINS(m, "dt.csv");
  EXPECT_CONTAINS(m, "dtype must be at::kFloat or at::kDouble, got Int");
}

TEST(Csv, InvalidDelimiter_Errors) {
  const std::string m =
      error_of([] { parse_csv("a,y\n1,2\n", CsvOptions().delimiter('"')); });
  EXPECT_CONTAINS(m, "delimiter cannot be");
}

TEST(Csv, ArbitraryBytes_OnlyThrowC10Error) {
  // Deterministic mutations of a valid file: every outcome is a Table or a
  // c10::Error (ASan/UBSan builds also check the memory accesses).
  const std::string base =
      "\xEF\xBB\xBF\"a\",b,y\r\n1,\"2\",3\n4, 5 ,\"6\"\"\"\n\n7,8,9";
  const std::string alphabet = ",\"\r\n \t0123456789.e+-naif\xEF\xBB\xBF";
  std::mt19937 rng(1234);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0:
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:
          if (pos < text.size()) {
            text.erase(pos, 1);
          }
          break;
        default:
          if (pos < text.size()) {
            text[pos] = static_cast<char>(rng() % 256);
          }
      }
    }
    // Pass a view whose end is not followed by a NUL terminator.
    const std::string padded = text + "XYZ";
    const std::string_view view(padded.data(), text.size());
    try {
      const Table t = parse_csv(view, CsvOptions().dtype(at::kDouble));
      EXPECT_EQ(t.features.size(0), t.targets.size(0));
      EXPECT_EQ(t.features.size(1),
                static_cast<int64_t>(t.feature_names.size()));
    } catch (const c10::Error&) {
      // Expected for most mutations.
    } catch (...) {
      ADD_FAILURE() << "non-c10 exception for input: " << text;
    }
  }
}

TEST(Csv, ManyRows_AllValuesExact) {
  std::string text = "i,half,y\n";
  const int64_t n = 20000;
  for (int64_t i = 0; i < n; ++i) {
    text += std::to_string(i) + "," + std::to_string(i) + ".5," +
            std::to_string(-i) + "\n";
  }
  const Table t = parse_csv(text, CsvOptions().dtype(at::kDouble));
  const at::Tensor i = at::arange(n, at::TensorOptions().dtype(at::kDouble));
  EXPECT_TRUE(at::equal(t.features, at::stack({i, i + 0.5}, 1)));
  EXPECT_TRUE(at::equal(t.targets, (-i).unsqueeze(1)));
}

// --- Files -------------------------------------------------------------------

class ReadCsv : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string p = dir_.file(name);
    std::ofstream out(p, std::ios::binary);
    out << content;
    return p;
  }
  normopt::test::TempDir dir_;
};

TEST_F(ReadCsv, File_SameAsParsingTheText) {
  const std::string path = write("plain.csv", kPlain);
  const auto options = CsvOptions().dtype(at::kDouble);
  const Table from_file = read_csv(path, options);
  const Table from_text = parse_csv(kPlain, options);
  EXPECT_TRUE(at::equal(from_file.features, from_text.features));
  EXPECT_TRUE(at::equal(from_file.targets, from_text.targets));
  EXPECT_EQ(from_file.feature_names, from_text.feature_names);
}

TEST_F(ReadCsv, ParseError_NamesTheFilePath) {
  const std::string path = write("bad.csv", "a,y\n1,2\n3,oops\n");
  const std::string m = error_of([&] { read_csv(path); });
  EXPECT_CONTAINS(m, path + " at line 3, column 2 (\"y\")");
}

TEST_F(ReadCsv, MissingFile_NamesPathAndOsReason) {
  const std::string path = dir_.file("does_not_exist.csv");
  const std::string m = error_of([&] { read_csv(path); });
  EXPECT_CONTAINS(m, "cannot open '" + path + "'");
  EXPECT_CONTAINS(m, std::strerror(ENOENT));
}

TEST_F(ReadCsv, Directory_Errors) {
  const std::string m = error_of([&] { read_csv(dir_.path); });
  EXPECT_CONTAINS(m, dir_.path);
  EXPECT_CONTAINS(m, "is a directory");
}

TEST_F(ReadCsv, EmptyFile_Errors) {
  const std::string path = write("empty.csv", "");
  const std::string m = error_of([&] { read_csv(path); });
  EXPECT_CONTAINS(m, path + " at line 1, column 1: the input is empty");
}

// --- Split -------------------------------------------------------------------

// A table whose feature column 0 is the row id, the target 10 * id.
Table numbered(int64_t n) {
  std::string text = "id,y\n";
  for (int64_t i = 0; i < n; ++i) {
    text += std::to_string(i) + "," + std::to_string(10 * i) + "\n";
  }
  return parse_csv(text, CsvOptions().dtype(at::kDouble));
}

std::vector<int64_t> ids(const Table& t) {
  const at::Tensor c = t.features.select(1, 0).to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(Split, Sizes_RoundedFraction) {
  const auto [train, valid] = train_validation_split(numbered(10), 0.25, 7);
  EXPECT_EQ(valid.size(), 3);  // round(2.5) away from zero
  EXPECT_EQ(train.size(), 7);
  EXPECT_EQ(train.features.sizes(), (std::vector<int64_t>{7, 1}));
  EXPECT_EQ(valid.targets.sizes(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(train.feature_names, (std::vector<std::string>{"id"}));
  EXPECT_EQ(valid.target_name, "y");
  EXPECT_EQ(train.features.scalar_type(), at::kDouble);
  EXPECT_TRUE(train.features.is_contiguous());
}

TEST(Split, DisjointAndCoverAllRows_RowsStayPaired) {
  const auto [train, valid] = train_validation_split(numbered(50), 0.2, 3);
  std::vector<int64_t> all = ids(train);
  const std::vector<int64_t> v = ids(valid);
  all.insert(all.end(), v.begin(), v.end());
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 50u);
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(all[static_cast<size_t>(i)], i);
  }
  // The target still belongs to its row.
  EXPECT_TRUE(at::equal(train.targets, train.features * 10));
  EXPECT_TRUE(at::equal(valid.targets, valid.features * 10));
}

TEST(Split, SameSeed_SameSplit) {
  const Table t = numbered(100);
  const auto a = train_validation_split(t, 0.3, 42);
  const auto b = train_validation_split(t, 0.3, 42);
  EXPECT_EQ(ids(a.first), ids(b.first));
  EXPECT_EQ(ids(a.second), ids(b.second));
}

TEST(Split, Seed_PinnedPermutationAcrossPlatforms) {
  // Own SplitMix64 + Fisher-Yates: this exact split must never change, or
  // every saved experiment's validation set would silently move.
  const auto [train, valid] = train_validation_split(numbered(10), 0.3, 42);
  EXPECT_EQ(ids(train), (std::vector<int64_t>{8, 6, 4, 7, 2, 1, 3}));
  EXPECT_EQ(ids(valid), (std::vector<int64_t>{0, 9, 5}));
}

TEST(Split, DifferentSeed_DifferentOrder) {
  const Table t = numbered(100);
  const auto a = train_validation_split(t, 0.3, 1);
  const auto b = train_validation_split(t, 0.3, 2);
  EXPECT_NE(ids(a.first), ids(b.first));
  // And the order is a real shuffle, not the identity.
  std::vector<int64_t> sorted = ids(a.first);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(ids(a.first), sorted);
}

TEST(Split, ZeroFraction_EverythingInTrain) {
  const auto [train, valid] = train_validation_split(numbered(5), 0.0, 9);
  EXPECT_EQ(train.size(), 5);
  EXPECT_EQ(valid.size(), 0);
  EXPECT_EQ(valid.features.sizes(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(valid.targets.sizes(), (std::vector<int64_t>{0, 1}));
}

TEST(Split, FractionOutsideRange_Errors) {
  const Table t = numbered(10);
  for (double f : {-0.1, 1.0, 1.5, std::nan("")}) {
    EXPECT_CONTAINS(error_of([&] { train_validation_split(t, f, 0); }),
                    "validation_fraction must be in [0, 1)");
  }
}

TEST(Split, EitherSideEmpty_Errors) {
  EXPECT_CONTAINS(
      error_of([] { train_validation_split(numbered(10), 0.01, 0); }),
      "leaves 0 validation and 10 training rows");
  EXPECT_CONTAINS(error_of([] { train_validation_split(numbered(2), 0.9, 0); }),
                  "leaves 2 validation and 0 training rows");
}

// --- TableDataset ------------------------------------------------------------

TEST(TableDataset, Get_ReturnsFeatureRowAndTarget) {
  const Table t = parse_csv(kPlain, CsvOptions().dtype(at::kDouble));
  TableDataset ds(t);
  ASSERT_EQ(ds.size(), std::optional<size_t>(3));
  const auto ex = ds.get(1);
  EXPECT_TRUE(at::equal(ex.data, doubles({-3, 45}, {2})));
  EXPECT_TRUE(at::equal(ex.target, doubles({20}, {1})));
}

TEST(TableDataset, Get_OutOfRange_Errors) {
  TableDataset ds(parse_csv(kPlain));
  EXPECT_CONTAINS(error_of([&] { ds.get(3); }), "index 3 is out of range");
}

TEST(TableDataset, MalformedTable_Errors) {
  Table bad;
  bad.features = at::zeros({3, 2});
  bad.targets = at::zeros({2, 1});
  EXPECT_CONTAINS(error_of([&] { TableDataset ds(bad); }),
                  "features (N, F) and targets (N, 1)");
}

TEST(TableDataset, DataLoader_StacksBatchesOfFour) {
  const Table t = numbered(10);
  auto loader = torch::data::make_data_loader(
      TableDataset(t).map(torch::data::transforms::Stack<>()),
      torch::data::DataLoaderOptions(4));
  std::vector<int64_t> sizes;
  std::vector<int64_t> seen;
  for (auto& batch : *loader) {
    ASSERT_EQ(batch.data.dim(), 2);
    EXPECT_EQ(batch.data.size(1), 1);
    EXPECT_EQ(batch.target.size(0), batch.data.size(0));
    EXPECT_EQ(batch.target.size(1), 1);
    EXPECT_TRUE(at::equal(batch.target, batch.data * 10));
    sizes.push_back(batch.data.size(0));
    const at::Tensor id = batch.data.select(1, 0).to(at::kLong).contiguous();
    seen.insert(seen.end(),
                id.data_ptr<int64_t>(),
                id.data_ptr<int64_t>() + id.numel());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(TableDataset, DataLoader_SequentialBatches_MatchTableRows) {
  const Table t = parse_csv(
      "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n13,14,15\n16,17,18\n19,20,21\n"
      "22,23,24\n");
  auto loader =
      torch::data::make_data_loader<torch::data::samplers::SequentialSampler>(
          TableDataset(t).map(torch::data::transforms::Stack<>()),
          torch::data::DataLoaderOptions(4));
  int64_t row = 0;
  for (auto& batch : *loader) {
    EXPECT_EQ(batch.data.sizes(), (std::vector<int64_t>{4, 2}));
    EXPECT_EQ(batch.target.sizes(), (std::vector<int64_t>{4, 1}));
    EXPECT_TRUE(at::equal(batch.data, t.features.slice(0, row, row + 4)));
    EXPECT_TRUE(at::equal(batch.target, t.targets.slice(0, row, row + 4)));
    row += 4;
  }
  EXPECT_EQ(row, 8);
}

}  // namespace
