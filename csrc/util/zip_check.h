#pragma once
// Internal: an integrity check of the zip archives LibTorch writes
// (torch::save, torch::serialize::OutputArchive), run before a file is handed
// to LibTorch's reader. That reader verifies no CRC and trusts the sizes in
// the pickled records: a damaged file can load wrong values silently or make
// the unpickler ask for tens of gigabytes.

#include <optional>
#include <string>
#include <string_view>

namespace normopt::util {

/// Checks that `bytes` is a well-formed zip archive whose stored
/// (uncompressed) entries, all of LibTorch's tensor data and pickles, match
/// the CRC-32 recorded for them; deflated entries (some TorchScript code
/// files) are checked for structure only. Returns nullopt
/// when it is, else what is wrong ("entry 'archive/data.pkl': CRC mismatch").
/// Zip64 archives (over 4 GB or 65,535 entries) are not checked: nullopt.
std::optional<std::string> check_zip(std::string_view bytes);

}  // namespace normopt::util
