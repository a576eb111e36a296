#pragma once
// Internal: the one way normopt reads a whole file (CSV data, checkpoints)
// and the one way it replaces one (History CSV/JSON, fit checkpoints,
// exported TorchScript pipelines), and the few questions it asks the file
// system.
//
// No std::filesystem in normopt: the PyTorch wheels export their own
// statically linked copy of libstdc++'s std::filesystem (pytorch/pytorch
// #133437), and a program linking LibTorch binds its calls to it; with
// torch 2.11+cu130 std::filesystem::remove_all jumps to address 0. PyTorch
// avoids <filesystem> on Linux for the same reason (#134494); so does
// normopt: these helpers call the OS (POSIX) directly.

#include <cstddef>
#include <cstdint>
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

/// A file opened for reading in pieces, at any offset and from several
/// threads at once (POSIX pread); closed when destroyed. For readers that
/// must not hold the whole file (the streaming CSV reader, a rank's byte
/// range) or that read it in parallel.
class InputFile {
 public:
  /// Opens `path`. Throws c10::Error as read_file() does (a folder, a path
  /// that cannot be opened).
  InputFile(std::string path, const char* where);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  /// The size in bytes when it was opened.
  int64_t size() const {
    return size_;
  }
  const std::string& path() const {
    return path_;
  }

  /// Reads up to `n` bytes at `offset` into `out`; fewer only at the end of
  /// the file. Throws c10::Error naming the path and the OS reason.
  size_t read_at(int64_t offset, char* out, size_t n) const;

 private:
  std::string path_;
  const char* where_;
  int fd_ = -1;
  int64_t size_ = 0;
};

/// What `path` names (symbolic links followed).
enum class PathKind { kMissing, kFile, kDirectory, kOther };
PathKind path_kind(const std::string& path);

/// The folder part of `path` ("" for a bare file name; "/" for "/x").
std::string parent_folder(const std::string& path);

}  // namespace normopt::util
