#pragma once
// Internal (namespace detail, not normopt's API: it may change in any
// release). One module's interface for another inside the library, kept
// in include/normopt/<module>/detail/ so that no file reaches into another
// module's csrc/ folder.
//
// The data module's interface for distributed::read_csv_shard
// (csrc/distributed/distributed.cpp), which reads a CSV file split over
// ranks; defined in csrc/data/csv/ranges.cpp. The rest of the CSV reader
// (csrc/data/csv/parts.h) stays private to data/.

#include <normopt/data/csv.h>
#include <normopt/data/table.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace normopt::data::csv {

/// A collective: every rank's `values` (each rank passes as many),
/// concatenated in rank order.
using GatherInts = std::function<std::vector<int64_t>(std::vector<int64_t>)>;

/// This rank's share of a CSV file read by `world` ranks together, each
/// parsing only its bytes: the data bytes are cut into `world` even ranges,
/// and rank r reads the rows that start in its range (from the first line
/// ending after its cut with an even number of '"' before it, which the
/// ranks learn from one exchange of quote counts; rank 0 from the first
/// data row). Every rank reads the header. Collective (calls `gather`
/// twice, or once after a local error). nullopt on every rank when any rank
/// failed (an unreadable file, a header error, a bad row, or a cut inside
/// a quoted field because of a stray '"') or the file has no data rows:
/// then the caller reads the whole file, whose error (or rows) every rank
/// gets.
std::optional<Table> read_csv_range(const std::string& path,
                                    const CsvOptions& options,
                                    int64_t rank,
                                    int64_t world,
                                    const GatherInts& gather);

}  // namespace normopt::data::csv
