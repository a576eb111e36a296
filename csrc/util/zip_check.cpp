#include "zip_check.h"

#include <zlib.h>

#include <cstdint>
#include <cstdio>

namespace normopt::util {
namespace {

uint32_t read_u32(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

uint16_t read_u16(std::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

// CRC-32 (IEEE 802.3, reflected, as zip uses): zlib's, several times
// faster than a byte-at-a-time table (benchmarks/bench_checkpoint.cpp).
// Entry sizes are 32-bit here (zip64 is not checked), as zlib's length is.
uint32_t crc32(std::string_view data) {
  return static_cast<uint32_t>(
      ::crc32(0L,
              reinterpret_cast<const Bytef*>(data.data()),
              static_cast<uInt>(data.size())));
}

constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30;
constexpr uint16_t kUnreadableFlags = 0x0001 | 0x0020 | 0x0040 | 0x2000;

// Four lower-case hex digits, as zip tools print the flags.
std::string hex16(uint16_t v) {
  char out[5];
  std::snprintf(out, sizeof out, "%04x", static_cast<unsigned>(v));
  return out;
}

}  // namespace

std::optional<std::string> check_zip(std::string_view b) {
  if (b.size() < kEndSize) {
    return "too short for a zip archive";
  }
  // The end-of-central-directory record: last in the file, before a comment
  // of at most 65,535 bytes.
  size_t end = std::string_view::npos;
  const size_t lowest =
      b.size() > kEndSize + 65535 ? b.size() - kEndSize - 65535 : 0;
  for (size_t at = b.size() - kEndSize + 1; at-- > lowest;) {
    if (read_u32(b, at) == kEndSignature &&
        at + kEndSize + read_u16(b, at + 20) == b.size()) {
      end = at;
      break;
    }
  }
  if (end == std::string_view::npos) {
    return "no end-of-central-directory record (truncated?)";
  }
  const uint16_t entries = read_u16(b, end + 10);
  const uint32_t dir_size = read_u32(b, end + 12);
  const uint32_t dir_offset = read_u32(b, end + 16);
  if (entries == 0xFFFF || dir_size == 0xFFFFFFFFu ||
      dir_offset == 0xFFFFFFFFu) {
    return std::nullopt;  // zip64: not checked here
  }
  if (uint64_t(dir_offset) + dir_size > end) {
    return "the central directory lies outside the file";
  }
  size_t at = dir_offset;
  for (uint16_t i = 0; i < entries; ++i) {
    if (at + kCentralSize > end || read_u32(b, at) != kCentralSignature) {
      return "central directory entry " + std::to_string(i) + " is damaged";
    }
    const uint16_t flags = read_u16(b, at + 8);
    const uint16_t method = read_u16(b, at + 10);
    const uint32_t crc = read_u32(b, at + 16);
    const uint32_t packed = read_u32(b, at + 20);
    const uint32_t size = read_u32(b, at + 24);
    const size_t name_len = read_u16(b, at + 28);
    const size_t extra_len = read_u16(b, at + 30);
    const size_t comment_len = read_u16(b, at + 32);
    const uint32_t local = read_u32(b, at + 42);
    if (at + kCentralSize + name_len > end) {
      return "central directory entry " + std::to_string(i) + " is damaged";
    }
    const std::string name(b.substr(at + kCentralSize, name_len));
    const std::string entry = "entry '" + name + "'";
    if (size == 0xFFFFFFFFu || packed == 0xFFFFFFFFu || local == 0xFFFFFFFFu) {
      return std::nullopt;  // zip64 entry: not checked here
    }
    // LibTorch writes flags 0x0808 (a data descriptor, UTF-8 names); its
    // reader opens the archive, then fails on an entry marked encrypted
    // (bits 0 and 6), patched (5) or masked (13), leaking the open archive.
    if (flags & kUnreadableFlags) {
      return entry + " is marked encrypted or patched (flags 0x" +
             hex16(flags) + "), which LibTorch neither writes nor reads";
    }
    // Stored entries (tensor data, pickles) are CRC-checked below; LibTorch
    // deflates some TorchScript code files, whose damage its own inflater
    // and compiler report.
    if (!(method == 0 && packed == size) && method != 8) {
      return entry + " has compression method " + std::to_string(method) +
             ", which LibTorch does not write";
    }
    if (uint64_t(local) + kLocalSize > dir_offset ||
        read_u32(b, local) != kLocalSignature ||
        b.substr(local + kLocalSize, name_len) != name) {
      return entry + ": its local header is damaged";
    }
    const uint64_t data = uint64_t(local) + kLocalSize +
                          read_u16(b, local + 26) + read_u16(b, local + 28);
    if (data + packed > dir_offset) {
      return entry + ": its data run past the central directory";
    }
    if (method == 0 && crc32(b.substr(data, size)) != crc) {
      return entry + ": CRC mismatch (damaged data)";
    }
    at += kCentralSize + name_len + extra_len + comment_len;
  }
  if (at != uint64_t(dir_offset) + dir_size) {
    return "the central directory's size does not match its entries";
  }
  return std::nullopt;
}

}  // namespace normopt::util
