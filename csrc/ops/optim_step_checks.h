#pragma once
// Internal: argument checks shared by the CPU and CUDA optimizer-step
// kernels, so both reject bad input with the same message.

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <initializer_list>
#include <utility>

namespace normopt::ops::detail {

using NamedList = std::pair<const char*, at::TensorList>;

/// Checks index-aligned tensor lists for one fused step: equal lengths; every
/// tensor defined, dense, on `device`; the tensors of one index share shape,
/// strides and dtype (floating) and do not overlap each other. `optional`
/// lists may be empty.
inline void check_step_lists(const char* op,
                             at::DeviceType device,
                             at::TensorList params,
                             std::initializer_list<NamedList> required,
                             std::initializer_list<NamedList> optional = {}) {
  const size_t n = params.size();
  auto check_length = [&](const NamedList& list) {
    TORCH_CHECK(list.second.size() == n,
                op,
                ": expected ",
                n,
                " tensors in ",
                list.first,
                " (one per parameter), got ",
                list.second.size());
  };
  for (const auto& l : required) {
    check_length(l);
  }
  for (const auto& l : optional) {
    if (!l.second.empty()) {
      check_length(l);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& p = params[i];
    TORCH_CHECK(p.defined(), op, ": params[", i, "] is undefined");
    TORCH_CHECK(p.device().type() == device,
                op,
                ": params[",
                i,
                "] is on ",
                p.device(),
                " but this kernel runs on ",
                device,
                "; keep every tensor of a step on one device");
    TORCH_CHECK(at::isFloatingType(p.scalar_type()),
                op,
                ": params[",
                i,
                "] has dtype ",
                p.scalar_type(),
                "; expected float32, float64, float16 or bfloat16");
    TORCH_CHECK(p.is_non_overlapping_and_dense(),
                op,
                ": params[",
                i,
                "] (shape ",
                p.sizes(),
                ", strides ",
                p.strides(),
                ") is not dense or overlaps itself; pass a contiguous tensor "
                "(e.g. p.contiguous())");
    auto check_peer = [&](const NamedList& list) {
      if (list.second.empty()) {
        return;
      }
      const auto& t = list.second[i];
      TORCH_CHECK(t.defined(), op, ": ", list.first, "[", i, "] is undefined");
      TORCH_CHECK(t.layout() == at::kStrided,
                  op,
                  ": ",
                  list.first,
                  "[",
                  i,
                  "] is sparse; normopt optimizers need dense gradients");
      TORCH_CHECK(t.sizes() == p.sizes() && t.strides() == p.strides(),
                  op,
                  ": ",
                  list.first,
                  "[",
                  i,
                  "] has shape ",
                  t.sizes(),
                  " and strides ",
                  t.strides(),
                  " but params[",
                  i,
                  "] has ",
                  p.sizes(),
                  " and ",
                  p.strides(),
                  "; they must match");
      TORCH_CHECK(
          t.scalar_type() == p.scalar_type() && t.device() == p.device(),
          op,
          ": ",
          list.first,
          "[",
          i,
          "] is ",
          t.scalar_type(),
          " on ",
          t.device(),
          " but params[",
          i,
          "] is ",
          p.scalar_type(),
          " on ",
          p.device(),
          "; they must match");
      TORCH_CHECK(at::get_overlap_status(p, t) == at::MemOverlapStatus::No,
                  op,
                  ": ",
                  list.first,
                  "[",
                  i,
                  "] shares memory with params[",
                  i,
                  "]; pass separate tensors");
    };
    for (const auto& l : required) {
      check_peer(l);
    }
    for (const auto& l : optional) {
      check_peer(l);
    }
  }
}

}  // namespace normopt::ops::detail
