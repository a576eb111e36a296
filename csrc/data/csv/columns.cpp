#include "parts.h"

#include <sstream>

namespace normopt::data::csv {

Columns select_columns(const Header& header,
                       const CsvOptions& options,
                       const std::string& source) {
  const auto header_where = [&]() {
    std::ostringstream os;
    os << "CSV error in " << source << " at line " << header.line
       << " (header)";
    return os.str();
  };
  const auto& names = header.names;
  const auto& index_of = header.index_of;
  const size_t n_columns = names.size();
  Columns columns;
  size_t& target_col = columns.target;
  target_col = n_columns - 1;
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
  std::vector<size_t>& feature_cols = columns.features;
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
  constexpr int64_t kTarget = Columns::kTarget;
  std::vector<int64_t> slot_of(n_columns, kSkip);
  for (size_t i = 0; i < n_features; ++i) {
    slot_of[feature_cols[i]] = static_cast<int64_t>(i);
  }
  slot_of[target_col] = kTarget;
  // Selected columns in file order, so errors name the leftmost bad cell.
  auto& selected = columns.selected;
  for (size_t c = 0; c < n_columns; ++c) {
    if (slot_of[c] != kSkip) {
      selected.emplace_back(c, slot_of[c]);
    }
  }
  return columns;
}

}  // namespace normopt::data::csv
