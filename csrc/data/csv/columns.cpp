#include "parts.h"

#include <sstream>

namespace normopt::data::csv {
namespace {

// "CSV error in <source> at line <n> (header)".
std::string header_where(const Header& header, const std::string& source) {
  std::ostringstream os;
  os << "CSV error in " << source << " at line " << header.line << " (header)";
  return os.str();
}

// CsvOptions::target's column, or the last one.
size_t target_column(const Header& header,
                     const CsvOptions& options,
                     const std::string& source) {
  if (options.target().empty()) {
    return header.names.size() - 1;
  }
  const auto it = header.index_of.find(options.target());
  TORCH_CHECK(
      it != header.index_of.end(),
      header_where(header, source),
      ": target column ",
      quote(options.target()),
      " not found. Available columns: ",
      column_list(header.names),
      ". Pass one of these names to CsvOptions::target (or \"\" for the "
      "last column).");
  return it->second;
}

// The columns CsvOptions::features lists, in its order: each once, none
// the target.
std::vector<size_t> listed_features(const Header& header,
                                    const CsvOptions& options,
                                    size_t target,
                                    const std::string& source) {
  std::vector<size_t> features;
  std::vector<bool> used(header.names.size(), false);
  for (const std::string& name : options.features()) {
    const auto it = header.index_of.find(name);
    TORCH_CHECK(it != header.index_of.end(),
                header_where(header, source),
                ": feature column ",
                quote(name),
                " not found. Available columns: ",
                column_list(header.names),
                ". Fix the name in CsvOptions::features.");
    TORCH_CHECK(it->second != target,
                header_where(header, source),
                ", column ",
                it->second + 1,
                ": ",
                quote(name),
                " is the target column and cannot also be a feature. Remove it "
                "from CsvOptions::features or choose another target.");
    TORCH_CHECK(
        !used[it->second],
        header_where(header, source),
        ", column ",
        it->second + 1,
        ": feature column ",
        quote(name),
        " is listed twice in CsvOptions::features. List each column once.");
    used[it->second] = true;
    features.push_back(it->second);
  }
  return features;
}

// The selected columns in file order, so errors name the leftmost bad cell,
// each with its slot: a feature index, or Columns::kTarget.
std::vector<std::pair<size_t, int64_t>> in_file_order(size_t n_columns,
                                                      const Columns& columns) {
  // slot_of[c]: where column c goes: feature index, kTarget, or kSkip.
  constexpr int64_t kSkip = -2;
  std::vector<int64_t> slot_of(n_columns, kSkip);
  for (size_t i = 0; i < columns.features.size(); ++i) {
    slot_of[columns.features[i]] = static_cast<int64_t>(i);
  }
  slot_of[columns.target] = Columns::kTarget;
  std::vector<std::pair<size_t, int64_t>> selected;
  for (size_t c = 0; c < n_columns; ++c) {
    if (slot_of[c] != kSkip) {
      selected.emplace_back(c, slot_of[c]);
    }
  }
  return selected;
}

}  // namespace

Columns select_columns(const Header& header,
                       const CsvOptions& options,
                       const std::string& source) {
  const size_t n_columns = header.names.size();
  Columns columns;
  columns.target = target_column(header, options, source);
  if (options.features().empty()) {
    for (size_t c = 0; c < n_columns; ++c) {
      if (c != columns.target) {
        columns.features.push_back(c);
      }
    }
  } else {
    columns.features = listed_features(header, options, columns.target, source);
  }
  TORCH_CHECK(!columns.features.empty(),
              header_where(header, source),
              ": no feature columns: the only column, ",
              quote(header.names[columns.target]),
              ", is the target. Add feature columns to the file.");
  columns.selected = in_file_order(n_columns, columns);
  return columns;
}

}  // namespace normopt::data::csv
