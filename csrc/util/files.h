#pragma once
// Internal: the one way normopt reads a whole file (CSV data, checkpoints)
// and the one way it replaces one (History CSV/JSON, fit checkpoints,
// exported TorchScript pipelines).

#include <string>
#include <string_view>

namespace normopt::util {

/// Replaces `path` with `bytes` so that, whatever happens, `path` holds
/// either its old content or the whole new content: the bytes go to a new
/// temporary file in the same folder (`path` + ".tmp." + 16 random hex
/// digits, created exclusively, so concurrent writers of one path never
/// share it), are flushed and fsync'ed, then the temporary file is renamed
/// over `path` and the folder is fsync'ed (POSIX), so a crash, a kill or a
/// full disk during the write leaves the previous file readable. Of
/// concurrent writers, the last rename wins, whole. On failure the
/// temporary file is removed and c10::Error names `where` (the caller), the
/// path, the step that failed and the OS reason; `path` is left as it was.
/// A process killed mid-write leaves its temporary file behind (no writer
/// can tell it from one still being written); nothing reads it.
void write_atomically(const std::string& path,
                      std::string_view bytes,
                      const char* where);

/// The whole content of the file at `path`, read in one pass (a file whose
/// size changes while it is read is read to its end). Throws c10::Error
/// starting with `where` (the caller) and naming the path, the OS reason
/// and what to check, when `path` is a folder or cannot be opened or read.
std::string read_file(const std::string& path, const char* where);

}  // namespace normopt::util
