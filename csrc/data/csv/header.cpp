#include "parts.h"

namespace normopt::data::csv {

void read_header(Scanner& scanner, const std::string& source, Header& header) {
  std::vector<Field> fields;
  TORCH_CHECK(
      scanner.next_record(fields),
      "CSV error in ",
      source,
      " at line 1, column 1: the input is empty; a header row of column "
      "names is expected, then one row per sample. Check that the right "
      "file was given and that it was fully written.");
  header.line = fields.front().line;
  auto& names = header.names;
  auto& index_of = header.index_of;
  names.reserve(fields.size());
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
}

}  // namespace normopt::data::csv
