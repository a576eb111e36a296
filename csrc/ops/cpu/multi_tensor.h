#pragma once
// Internal: runs an elementwise kernel over a list of tensors, splitting the
// elements of all tensors into chunks that threads share. Small workloads run
// on the calling thread: a 3-parameter model pays no threading cost, and
// 1,000 small tensors are spread over threads like one large one.

#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

namespace normopt::ops::cpu {

/// Below this many elements in total a step stays on one thread.
constexpr int64_t kParallelThreshold = 1 << 15;
/// Elements per chunk handed to a thread.
constexpr int64_t kChunk = 1 << 15;

/// Calls fn(tensor_index, begin, end) so that every element
/// [0, tensors[t].numel) of every tensor is covered exactly once.
template <typename Tensors, typename Fn>
void for_each_chunk(const Tensors& tensors, const Fn& fn) {
  int64_t total = 0;
  for (const auto& t : tensors) {
    total += t.numel;
  }
  if (total < kParallelThreshold || at::get_num_threads() == 1) {
    for (size_t t = 0; t < tensors.size(); ++t) {
      fn(t, int64_t{0}, tensors[t].numel);
    }
    return;
  }
  std::vector<int64_t> numels(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    numels[t] = tensors[t].numel;
  }
  struct Chunk {
    size_t tensor;
    int64_t begin;
    int64_t end;
  };
  std::vector<Chunk> chunks;
  chunks.reserve(numels.size() + total / kChunk);
  for (size_t t = 0; t < numels.size(); ++t) {
    for (int64_t b = 0; b < numels[t]; b += kChunk) {
      chunks.push_back({t, b, std::min(numels[t], b + kChunk)});
    }
  }
  at::parallel_for(
      0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          fn(chunks[c].tensor, chunks[c].begin, chunks[c].end);
        }
      });
}

}  // namespace normopt::ops::cpu
