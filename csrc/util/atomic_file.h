#pragma once
// Internal: the one way normopt replaces a file (History CSV/JSON, fit
// checkpoints, exported TorchScript pipelines).

#include <string>
#include <string_view>

namespace normopt::util {

/// Replaces `path` with `bytes` so that, whatever happens, `path` holds
/// either its old content or the whole new content: the bytes go to
/// `path + ".tmp"` in the same folder, are flushed and fsync'ed, then the
/// temporary file is renamed over `path` and the folder is fsync'ed (POSIX),
/// so a crash, a kill or a full disk during the write leaves the previous
/// file readable. On failure the temporary file is removed and c10::Error
/// names `where` (the caller), the path, the step that failed and the OS
/// reason; `path` is left as it was.
void write_atomically(const std::string& path,
                      std::string_view bytes,
                      const char* where);

}  // namespace normopt::util
