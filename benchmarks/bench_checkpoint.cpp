// The integrity check a checkpoint gets before LibTorch reads it
// (util::check_zip, CRC-32 over every stored entry) on a 200 MB archive,
// next to zlib's crc32 alone and the byte-at-a-time table CRC that
// check_zip used before it called zlib (kept here as the reference).
// Counter: bytes_per_second.
//
// Run: build/benchmarks/bench_checkpoint
#include "util/zip_check.h"

#include <benchmark/benchmark.h>
#include <torch/serialize/output-archive.h>
#include <zlib.h>

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

constexpr int64_t kFloats = 50'000'000;  // 200 MB of float32

// A LibTorch archive (stored entries, as checkpoints are) of one tensor.
const std::string& archive() {
  static const std::string bytes = [] {
    torch::serialize::OutputArchive out;
    out.write("weights", at::randn({kFloats}, at::kFloat));
    std::string s;
    out.save_to([&s](const void* data, size_t size) -> size_t {
      s.append(static_cast<const char*>(data), size);
      return size;
    });
    return s;
  }();
  return bytes;
}

// The CRC-32 check_zip computed by hand before zlib's.
uint32_t crc32_bytewise(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      }
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (const char ch : data) {
    c = table[(c ^ static_cast<unsigned char>(ch)) & 0xFF] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

// Times `fn` over the archive's bytes.
template <typename Fn>
void over_archive(benchmark::State& state, const Fn& fn) {
  const auto& bytes = archive();
  for (auto _ : state) {
    auto result = fn(bytes);
    benchmark::DoNotOptimize(result);
  }
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(bytes.size()));
}

void BM_CheckZip(benchmark::State& state) {
  over_archive(
      state, [](const auto& bytes) { return normopt::util::check_zip(bytes); });
}

void BM_Crc32_zlib(benchmark::State& state) {
  over_archive(state, [](const auto& bytes) {
    // zlib's length is a uInt: whole buffers of up to 4 GB at once.
    return ::crc32(0L,
                   reinterpret_cast<const Bytef*>(bytes.data()),
                   static_cast<uInt>(bytes.size()));
  });
}

void BM_Crc32_bytewise(benchmark::State& state) {
  over_archive(state, [](const auto& bytes) { return crc32_bytewise(bytes); });
}

}  // namespace

BENCHMARK(BM_CheckZip)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Crc32_zlib)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Crc32_bytewise)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
