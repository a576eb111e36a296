// util::check_zip against the CRC-32 check values of the standard (the CRC
// of "123456789" is 0xCBF43926, ITU-T V.42 / ISO 3309), on zip archives
// built here byte by byte: one stored entry each.
#include "util/zip_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace {

void put16(std::string& out, uint16_t v) {
  out += static_cast<char>(v & 0xFF);
  out += static_cast<char>(v >> 8);
}

void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v & 0xFFFF));
  put16(out, static_cast<uint16_t>(v >> 16));
}

// A zip archive of one stored entry `name` holding `data`, recorded with
// CRC `crc` and general-purpose `flags` (in both headers): local header,
// data, central directory, end record.
std::string stored_zip(const std::string& name,
                       const std::string& data,
                       uint32_t crc,
                       uint16_t flags = 0) {
  const auto size = static_cast<uint32_t>(data.size());
  const auto name_len = static_cast<uint16_t>(name.size());
  std::string zip;
  put32(zip, 0x04034b50);  // local header
  put16(zip, 20);          // version needed
  put16(zip, flags);
  put16(zip, 0);  // method 0 (stored)
  put32(zip, 0);  // time, date
  put32(zip, crc);
  put32(zip, size);  // packed
  put32(zip, size);
  put16(zip, name_len);
  put16(zip, 0);  // extra
  zip += name + data;
  const auto directory = static_cast<uint32_t>(zip.size());
  put32(zip, 0x02014b50);  // central directory entry
  put16(zip, 20);          // made by
  put16(zip, 20);          // needed
  put16(zip, flags);
  put16(zip, 0);  // method 0
  put32(zip, 0);  // time, date
  put32(zip, crc);
  put32(zip, size);
  put32(zip, size);
  put16(zip, name_len);
  put32(zip, 0);  // extra, comment
  put32(zip, 0);  // disk, internal attributes
  put32(zip, 0);  // external attributes
  put32(zip, 0);  // the local header's offset
  zip += name;
  const auto directory_size = static_cast<uint32_t>(zip.size()) - directory;
  put32(zip, 0x06054b50);  // end of central directory
  put32(zip, 0);           // disk numbers
  put16(zip, 1);           // entries on this disk
  put16(zip, 1);           // entries
  put32(zip, directory_size);
  put32(zip, directory);
  put16(zip, 0);  // comment
  return zip;
}

}  // namespace

TEST(ZipCheck, StandardCheckValues_Accepted) {
  using normopt::util::check_zip;
  EXPECT_EQ(check_zip(stored_zip("a.txt", "123456789", 0xCBF43926)),
            std::nullopt);
  EXPECT_EQ(check_zip(stored_zip("fox.txt",
                                 "The quick brown fox jumps over the lazy dog",
                                 0x414FA339)),
            std::nullopt);
  EXPECT_EQ(check_zip(stored_zip("empty", "", 0)), std::nullopt);
}

TEST(ZipCheck, WrongCrcOrDamagedData_NamesTheEntry) {
  using normopt::util::check_zip;
  const std::string message = "entry 'a.txt': CRC mismatch (damaged data)";
  EXPECT_EQ(check_zip(stored_zip("a.txt", "123456789", 0xCBF43927)), message);
  EXPECT_EQ(check_zip(stored_zip("a.txt", "123456780", 0xCBF43926)), message);
  EXPECT_EQ(check_zip(stored_zip("empty", "", 1)),
            "entry 'empty': CRC mismatch (damaged data)");
}

TEST(ZipCheck, EncryptedOrPatchedEntry_Refused) {
  // LibTorch's reader opens such an archive, then fails on the entry (and
  // leaks the open archive): refused first. The flags LibTorch writes
  // (0x0808: a data descriptor, UTF-8 names) pass.
  using normopt::util::check_zip;
  EXPECT_EQ(check_zip(stored_zip("a.txt", "123456789", 0xCBF43926, 0x0808)),
            std::nullopt);
  for (const auto& [flags, hex] : {std::pair<uint16_t, std::string>{1, "0001"},
                                   {0x0020, "0020"},
                                   {0x0852, "0852"},
                                   {0x2808, "2808"}}) {
    EXPECT_EQ(check_zip(stored_zip("a.txt", "123456789", 0xCBF43926, flags)),
              "entry 'a.txt' is marked encrypted or patched (flags 0x" + hex +
                  "), which LibTorch neither writes nor reads");
  }
}
