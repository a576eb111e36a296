#pragma once

/// `TableStream`: numeric data read a part at a time, for data larger than
/// memory. `CsvReader` (<normopt/data/csv_reader.h>) is one; the streaming
/// statistics (Normalization::adapt, TargetStandardizer::fit,
/// StandardizedRegressor::fit_statistics) read any.

#include <normopt/data/table.h>
#include <normopt/macros.h>

#include <optional>

namespace normopt::data {

/// A source of Tables read one after another: each is a part of one data
/// set (same columns, names and dtype), in order; together they are the
/// whole data set.
class NORMOPT_API TableStream {
 public:
  virtual ~TableStream() = default;

  /// The next part, or std::nullopt once every row has been read.
  virtual std::optional<Table> next() = 0;

  /// Starts again from the first row (the next epoch, or a second pass).
  virtual void rewind() = 0;
};

}  // namespace normopt::data
