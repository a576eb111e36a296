#include "files.h"

#include "split_mix.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <system_error>
#include <thread>
#include <utility>

#if defined(_WIN32)
#include <io.h>
#include <process.h>
#else
#include <fcntl.h>
#include <sys/stat.h>
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
void sync_directory(const std::string& file) {
#if !defined(_WIN32)
  std::string folder = parent_folder(file);
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

// Creates a new file beside `path` whose name no other writer uses
// (`path` + ".tmp." + 16 random hex digits, created exclusively), opened
// for writing; on failure returns nullptr with errno set and `tmp` holding
// the last name tried.
std::FILE* create_unique_temporary(const std::string& path, std::string* tmp) {
  // The process, the thread, a per-process count and the clock, mixed: no
  // two writers draw the same name at once (and O_EXCL catches it if they
  // did). No std::random_device: the platform's entropy source is not needed
  // for this and not everywhere usable.
  static std::atomic<uint64_t> count{0};
  const auto now = static_cast<uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
#if defined(_WIN32)
  const auto pid = static_cast<uint64_t>(_getpid());
#else
  const auto pid = static_cast<uint64_t>(::getpid());
#endif
  SplitMix64 random{(pid << 32) ^ now ^
                    (count.fetch_add(1) * 0x9E3779B97F4A7C15ULL) ^
                    std::hash<std::thread::id>{}(std::this_thread::get_id())};
  for (int attempt = 0; attempt < 16; ++attempt) {
    char suffix[17];
    std::snprintf(suffix,
                  sizeof(suffix),
                  "%016llx",
                  static_cast<unsigned long long>(random.next()));
    *tmp = path + ".tmp." + suffix;
#if defined(_WIN32)
    // "x": fail if it exists (C11), as O_EXCL.
    std::FILE* file = std::fopen(tmp->c_str(), "wbx");
#else
    const int fd =
        ::open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    std::FILE* file = fd < 0 ? nullptr : ::fdopen(fd, "wb");
    if (fd >= 0 && file == nullptr) {
      const int err = errno;
      ::close(fd);
      std::remove(tmp->c_str());
      errno = err;
    }
#endif
    if (file != nullptr || errno != EEXIST) {
      return file;
    }
  }
  return nullptr;
}

}  // namespace

void write_atomically(const std::string& path,
                      std::string_view bytes,
                      const char* where) {
  std::string tmp;
  bool created = false;
  auto fail = [&](const char* step, const std::string& reason) {
    if (created) {
      std::remove(tmp.c_str());
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
  std::FILE* file = create_unique_temporary(path, &tmp);
  if (file == nullptr) {
    fail("creating", std::strerror(errno));
  }
  created = true;
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
  // std::rename is POSIX rename(2) here: it replaces `path` atomically.
  // (Windows' refuses an existing target: MoveFileEx would be needed there.)
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    fail("renaming", std::strerror(errno));
  }
  sync_directory(path);
}

std::string read_file(const std::string& path, const char* where) {
  const InputFile file(path, where);
  std::string text(static_cast<size_t>(file.size()), '\0');
  size_t used = file.read_at(0, text.data(), text.size());
  // To the end of the file, also when it grew since it was opened (without
  // doubling the string, which would hold twice the file).
  if (used == text.size()) {
    char chunk[1 << 16];
    size_t got = 0;
    while ((got = file.read_at(
                static_cast<int64_t>(used), chunk, sizeof(chunk))) > 0) {
      text.append(chunk, got);
      used += got;
    }
  }
  text.resize(used);
  return text;
}

InputFile::InputFile(std::string path, const char* where)
    : path_(std::move(path)), where_(where) {
  TORCH_CHECK(path_kind(path_) != PathKind::kDirectory,
              where_,
              ": cannot read '",
              path_,
              "': it is a directory. Pass the path of a file.");
  errno = 0;
#if defined(_WIN32)
  fd_ = ::_open(path_.c_str(), _O_RDONLY | _O_BINARY);
#else
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
#endif
  const int open_errno = errno;
  TORCH_CHECK(fd_ >= 0,
              where_,
              ": cannot open '",
              path_,
              "' for reading: ",
              std::strerror(open_errno),
              " (errno ",
              open_errno,
              "). Check that the path is right (relative paths start at the "
              "working directory) and that the file is readable.");
  struct stat info {};
  size_ = ::fstat(fd_, &info) == 0 ? static_cast<int64_t>(info.st_size) : 0;
}

InputFile::~InputFile() {
  if (fd_ >= 0) {
#if defined(_WIN32)
    ::_close(fd_);
#else
    ::close(fd_);
#endif
  }
}

size_t InputFile::read_at(int64_t offset, char* out, size_t n) const {
  size_t done = 0;
  while (done < n) {
#if defined(_WIN32)
    // No pread: callers on Windows must not share one InputFile across
    // threads.
    ::_lseeki64(fd_, offset + static_cast<int64_t>(done), SEEK_SET);
    const auto got = ::_read(fd_, out + done, static_cast<unsigned>(n - done));
#else
    const ssize_t got =
        ::pread(fd_, out + done, n - done, static_cast<off_t>(offset) + done);
#endif
    if (got == 0) {
      break;  // end of file
    }
    if (got < 0) {
      const int read_errno = errno;
      if (read_errno == EINTR) {
        continue;
      }
      TORCH_CHECK(false,
                  where_,
                  ": cannot read '",
                  path_,
                  "': ",
                  std::strerror(read_errno),
                  " (errno ",
                  read_errno,
                  "). Check that the file is readable and not being "
                  "modified.");
    }
    done += static_cast<size_t>(got);
  }
  return done;
}

PathKind path_kind(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    return PathKind::kMissing;
  }
  if (S_ISREG(info.st_mode)) {
    return PathKind::kFile;
  }
  return S_ISDIR(info.st_mode) ? PathKind::kDirectory : PathKind::kOther;
}

std::string parent_folder(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) {
    return "";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace normopt::util
