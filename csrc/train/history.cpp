#include <normopt/train/history.h>

#include "../util/files.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace normopt::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string format_number(double value) {
  if (std::isnan(value)) {
    return "nan";
  }
  char buffer[64];
  // Shortest form is not wanted: %.17g-style output round-trips and matches
  // what other tools print; to_chars keeps it locale-independent.
  auto result = std::to_chars(
      buffer, buffer + sizeof(buffer), value, std::chars_format::general, 17);
  return std::string(buffer, result.ptr);
}

}  // namespace

double History::gap_to_optimum() const {
  if (!optimum_mse || epochs.empty()) {
    return kNaN;
  }
  return epochs.back().train_mse - *optimum_mse;
}

double History::relative_gap() const {
  if (!optimum_mse || epochs.empty()) {
    return kNaN;
  }
  return epochs.back().train_mse / *optimum_mse - 1;
}

void History::write_csv(const std::string& path) const {
  std::string out = "epoch";
  for (const auto& field : kEpochLogFields) {
    out += ',';
    out += field.name;
  }
  out += '\n';
  for (const auto& e : epochs) {
    out += std::to_string(e.epoch);
    for (const auto& field : kEpochLogFields) {
      out += ',';
      out += format_number(e.*field.member);
    }
    out += '\n';
  }
  util::write_atomically(path, out, "History.write_csv");
}

void History::write_json(const std::string& path,
                         const std::string& run_name) const {
  // ordered_json keeps the keys in the order written; NaN and infinities
  // become null.
  nlohmann::ordered_json doc;
  doc["run"] = run_name;
  doc["optimum_mse"] =
      optimum_mse ? nlohmann::ordered_json(*optimum_mse) : nullptr;
  doc["stopped_early"] = stopped_early;
  auto& rows = doc["epochs"] = nlohmann::ordered_json::array();
  for (const auto& e : epochs) {
    nlohmann::ordered_json row;
    row["epoch"] = e.epoch;
    for (const auto& field : kEpochLogFields) {
      row[field.name] = e.*field.member;
    }
    rows.push_back(std::move(row));
  }
  // A run name that is not valid UTF-8 gets U+FFFD, not an exception.
  util::write_atomically(
      path,
      doc.dump(
          2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
          "\n",
      "History.write_json");
}

}  // namespace normopt::train
