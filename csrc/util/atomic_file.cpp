#include "atomic_file.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#if defined(_WIN32)
#include <io.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

namespace normopt::util {
namespace {

// Flushes the file's data to the device (fsync), so the rename below can
// never expose a file whose blocks were not written yet.
bool sync_file(std::FILE* file) {
#if defined(_WIN32)
  return _commit(_fileno(file)) == 0;
#else
  return ::fsync(::fileno(file)) == 0;
#endif
}

// Makes the rename itself durable. Best effort: some file systems refuse to
// open or sync a directory, and the data is already safe either way.
void sync_directory(const std::filesystem::path& file) {
#if !defined(_WIN32)
  auto folder = file.parent_path();
  if (folder.empty()) {
    folder = ".";
  }
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
#else
  (void)file;
#endif
}

}  // namespace

void write_atomically(const std::string& path,
                      std::string_view bytes,
                      const char* where) {
  const std::string tmp = path + ".tmp";
  auto fail = [&](const char* step, const std::string& reason) {
    std::error_code ignored;
    // Only a file: never a folder that happens to carry the name.
    if (std::filesystem::is_regular_file(tmp, ignored)) {
      std::filesystem::remove(tmp, ignored);
    }
    TORCH_CHECK(false,
                where,
                ": cannot write '",
                path,
                "' (",
                step,
                " '",
                tmp,
                "'): ",
                reason,
                "; '",
                path,
                "' was left as it was. Check that the folder exists, is "
                "writable and has free space");
  };
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    fail("opening", std::strerror(errno));
  }
  errno = 0;
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), file);
  if (written != bytes.size()) {
    const int err = errno;
    std::fclose(file);
    fail("writing", err != 0 ? std::strerror(err) : "short write");
  }
  if (std::fflush(file) != 0 || !sync_file(file)) {
    const int err = errno;
    std::fclose(file);
    fail("flushing", std::strerror(err));
  }
  if (std::fclose(file) != 0) {
    fail("closing", std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    fail("renaming", ec.message());
  }
  sync_directory(path);
}

}  // namespace normopt::util
