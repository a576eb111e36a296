#pragma once
// Internal: argument checks shared by the CPU, CUDA, Meta and generic
// kernels of the optimizer-step ops, so every backend rejects bad input with
// the same message, and a traced call fails where an eager one would.

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include "optim_step_args.h"

#include <initializer_list>
#include <utility>

namespace normopt::ops::detail {

using NamedList = std::pair<const char*, at::TensorList>;

inline bool has_symbolic_shape(at::TensorList list) {
  for (const auto& t : list) {
    if (t.defined() && t.unsafeGetTensorImpl()->has_symbolic_sizes_strides()) {
      return true;
    }
  }
  return false;
}

/// Whether `list` holds one tensor per parameter (n); an `optional` list may
/// instead be empty.
inline bool length_fits(const NamedList& list, size_t n, bool optional) {
  return list.second.size() == n || (optional && list.second.empty());
}

/// Each list of `required` and `optional` has a length that fits.
inline void check_lengths(const char* op,
                          size_t n,
                          std::initializer_list<NamedList> required,
                          std::initializer_list<NamedList> optional) {
  for (const bool is_optional : {false, true}) {
    for (const auto& l : is_optional ? optional : required) {
      TORCH_CHECK(length_fits(l, n, is_optional),
                  op,
                  ": expected ",
                  n,
                  " tensors in ",
                  l.first,
                  " (one per parameter), got ",
                  l.second.size());
    }
  }
}

/// params[i]: defined, on `device`, floating, dense (unless symbolic).
inline void check_param(const char* op,
                        at::DeviceType device,
                        const at::Tensor& p,
                        size_t i,
                        bool symbolic) {
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
  TORCH_CHECK(symbolic || p.is_non_overlapping_and_dense(),
              op,
              ": params[",
              i,
              "] (shape ",
              p.sizes(),
              ", strides ",
              p.strides(),
              ") is not dense or overlaps itself; pass a contiguous tensor "
              "(e.g. p.contiguous())");
}

/// `name`[i] (t) has params[i]'s (p) shape and strides (symbolic: its
/// symbolic shape).
inline void check_same_shape(const char* op,
                             const char* name,
                             const at::Tensor& t,
                             const at::Tensor& p,
                             size_t i,
                             bool symbolic) {
  if (symbolic) {
    TORCH_CHECK(t.sym_sizes() == p.sym_sizes(),
                op,
                ": ",
                name,
                "[",
                i,
                "] has shape ",
                t.sym_sizes(),
                " but params[",
                i,
                "] has ",
                p.sym_sizes(),
                "; they must match");
    return;
  }
  TORCH_CHECK(t.sizes() == p.sizes() && t.strides() == p.strides(),
              op,
              ": ",
              name,
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
}

/// `list`[i] fits params[i] (p): defined, dense, the same shape, strides,
/// dtype and device, and no memory shared with it. An empty list passes.
inline void check_peer(const char* op,
                       const NamedList& list,
                       const at::Tensor& p,
                       size_t i,
                       bool symbolic) {
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
  check_same_shape(op, list.first, t, p, i, symbolic);
  TORCH_CHECK(t.scalar_type() == p.scalar_type() && t.device() == p.device(),
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
  TORCH_CHECK(
      symbolic || at::get_overlap_status(p, t) == at::MemOverlapStatus::No,
      op,
      ": ",
      list.first,
      "[",
      i,
      "] shares memory with params[",
      i,
      "]; pass separate tensors");
}

/// A contiguous, concrete, strided tensor with storage and the bytes it
/// spans, [begin, end): what the quick test below accepts.
struct PlainSpan {
  const char* begin = nullptr;
  const char* end = nullptr;
};

C10_ALWAYS_INLINE bool plain_span(const at::Tensor& t, PlainSpan& span) {
  if (!t.defined()) {
    return false;
  }
  const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
  if (impl->has_symbolic_sizes_strides() || impl->layout() != at::kStrided ||
      !impl->is_contiguous()) {
    return false;
  }
  const c10::Storage& storage = impl->unsafe_storage();
  if (!storage) {
    return false;
  }
  const auto item = static_cast<int64_t>(impl->itemsize());
  span.begin =
      static_cast<const char*>(storage.data()) + impl->storage_offset() * item;
  span.end = span.begin + impl->numel() * item;
  return true;
}

/// t's sizes and strides are p's (both concrete), compared in place.
C10_ALWAYS_INLINE bool same_sizes_strides(const c10::TensorImpl* t,
                                          const c10::TensorImpl* p) {
  const auto ts = t->sizes(), ps = p->sizes();
  const auto tst = t->strides(), pst = p->strides();
  if (ts.size() != ps.size()) {
    return false;
  }
  for (size_t d = 0; d < ts.size(); ++d) {
    if (ts[d] != ps[d] || tst[d] != pst[d]) {
      return false;
    }
  }
  return true;
}

/// A quick test that is sufficient, not necessary, for check_step_lists to
/// pass: every tensor contiguous, concrete and with storage; each index's
/// tensors of one shape, strides, dtype (floating) and device; and the
/// bytes of params[i] disjoint from those of each other tensor of index i
/// (disjoint bytes are what at::get_overlap_status calls No). It makes no
/// calls out of line, so a small model's step pays a few nanoseconds per
/// tensor for it; anything it does not accept goes to the full checks,
/// which decide and word the error.
C10_ALWAYS_INLINE bool plainly_valid(
    at::DeviceType device,
    at::TensorList params,
    std::initializer_list<NamedList> required,
    std::initializer_list<NamedList> optional) {
  const size_t n = params.size();
  for (const auto& l : required) {
    if (!length_fits(l, n, /*optional=*/false)) {
      return false;
    }
  }
  for (const auto& l : optional) {
    if (!length_fits(l, n, /*optional=*/true)) {
      return false;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    PlainSpan ps;
    if (!plain_span(params[i], ps)) {
      return false;
    }
    const c10::TensorImpl* p = params[i].unsafeGetTensorImpl();
    if (p->device().type() != device ||
        !at::isFloatingType(p->dtype().toScalarType())) {
      return false;
    }
    for (const auto& lists : {required, optional}) {
      for (const auto& l : lists) {
        if (l.second.empty()) {
          continue;
        }
        PlainSpan ts;
        if (!plain_span(l.second[i], ts)) {
          return false;
        }
        const c10::TensorImpl* t = l.second[i].unsafeGetTensorImpl();
        if (t == p || t->dtype() != p->dtype() || t->device() != p->device() ||
            !same_sizes_strides(t, p) ||
            (ts.begin < ps.end && ps.begin < ts.end)) {
          return false;
        }
      }
    }
  }
  return true;
}

/// check_step_lists (below) in full, out of line: the path of the lists
/// plainly_valid does not accept.
C10_NOINLINE inline void check_step_lists_fully(
    const char* op,
    at::DeviceType device,
    at::TensorList params,
    std::initializer_list<NamedList> required,
    std::initializer_list<NamedList> optional) {
  bool symbolic = has_symbolic_shape(params);
  for (const auto& lists : {required, optional}) {
    for (const auto& l : lists) {
      symbolic = symbolic || has_symbolic_shape(l.second);
    }
  }
  check_lengths(op, params.size(), required, optional);
  for (size_t i = 0; i < params.size(); ++i) {
    check_param(op, device, params[i], i, symbolic);
    for (const auto& lists : {required, optional}) {
      for (const auto& l : lists) {
        check_peer(op, l, params[i], i, symbolic);
      }
    }
  }
}

/// Checks index-aligned tensor lists for one fused step: equal lengths; every
/// tensor defined, dense, on `device`; the tensors of one index share shape,
/// strides and dtype (floating) and do not overlap each other. `optional`
/// lists may be empty. Fake tensors with symbolic shapes (torch.compile
/// dynamic=True) have no concrete sizes: their symbolic sizes are compared
/// and the density and overlap tests, which need real memory, are left to
/// the real kernel. Lists that plainly_valid accepts pass at once; the full
/// walk decides (and words the error) for the rest.
inline void check_step_lists(const char* op,
                             at::DeviceType device,
                             at::TensorList params,
                             std::initializer_list<NamedList> required,
                             std::initializer_list<NamedList> optional = {}) {
  // Only the CPU and CUDA kernels, which read the tensors' memory anyway,
  // take the quick test: a Meta or fake tensor's storage may refuse to give
  // its data pointer.
  const bool reads_memory = device == at::kCPU || device == at::kCUDA;
  if (C10_LIKELY(reads_memory &&
                 plainly_valid(device, params, required, optional))) {
    return;
  }
  check_step_lists_fully(op, device, params, required, optional);
}

/// The tensor-list checks of both Adam ops.
inline void check_adam_lists(const char* op,
                             at::DeviceType device,
                             const AdamLists& l,
                             bool amsgrad) {
  check_step_lists(op,
                   device,
                   l.params,
                   {{"grads", l.grads},
                    {"exp_avgs", l.exp_avgs},
                    {"exp_avg_sqs", l.exp_avg_sqs}},
                   {{"max_exp_avg_sqs", l.max_exp_avg_sqs}});
  TORCH_CHECK(!amsgrad || l.max_exp_avg_sqs.size() == l.params.size(),
              op,
              ": amsgrad needs one max_exp_avg_sqs tensor per parameter, got ",
              l.max_exp_avg_sqs.size());
}

/// The hyper-parameter checks of both Adam ops.
inline void check_adam_hyper(const char* op, const AdamStepOptions& o) {
  TORCH_CHECK(o.lr >= 0, op, ": invalid learning rate ", o.lr);
  TORCH_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
              op,
              ": betas must be in [0, 1), got (",
              o.beta1,
              ", ",
              o.beta2,
              ")");
  TORCH_CHECK(o.eps >= 0, op, ": invalid eps ", o.eps);
}

/// adam_step_'s step counts: one per parameter, each at least 1.
inline void check_step_counts(const char* op,
                              at::TensorList params,
                              at::IntArrayRef steps) {
  TORCH_CHECK(steps.size() == params.size(),
              op,
              ": expected ",
              params.size(),
              " step counts, got ",
              steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    TORCH_CHECK(steps[i] >= 1,
                op,
                ": steps[",
                i,
                "] is ",
                steps[i],
                "; step counts start at 1");
  }
}

/// adam_step_capturable_'s step counts: one-element float32 or float64
/// tensors (one dtype for the list), each on its parameter's device; their
/// values are not checked (that would read device memory on the host, which
/// a captured step cannot do).
inline void check_step_counts(const char* op,
                              at::TensorList params,
                              at::TensorList state_steps) {
  check_lengths(op, params.size(), {{"state_steps", state_steps}}, {});
  for (size_t i = 0; i < state_steps.size(); ++i) {
    const auto& s = state_steps[i];
    TORCH_CHECK(s.defined(), op, ": state_steps[", i, "] is undefined");
    TORCH_CHECK(
        (s.scalar_type() == at::kFloat || s.scalar_type() == at::kDouble) &&
            s.scalar_type() == state_steps[0].scalar_type(),
        op,
        ": state_steps[",
        i,
        "] has dtype ",
        s.scalar_type(),
        " and state_steps[0] ",
        state_steps[0].scalar_type(),
        "; step counts are float32 or float64 tensors, one dtype for the "
        "list");
    TORCH_CHECK(s.device() == params[i].device(),
                op,
                ": state_steps[",
                i,
                "] is on ",
                s.device(),
                " but params[",
                i,
                "] on ",
                params[i].device(),
                "; a capturable step keeps each step count on its "
                "parameter's device");
    TORCH_CHECK(s.sym_numel() == 1,
                op,
                ": state_steps[",
                i,
                "] has shape ",
                s.sym_sizes(),
                "; a step count is one element (e.g. torch.zeros(()))");
  }
}

/// Every argument check of normopt::adam_step_ (Steps = at::IntArrayRef) or
/// adam_step_capturable_ (at::TensorList).
template <typename Steps>
void check_adam_args(at::DeviceType device,
                     const AdamLists& l,
                     Steps steps,
                     const AdamStepOptions& o) {
  constexpr const char* kOp = kAdamOp<Steps>;
  check_adam_lists(kOp, device, l, o.amsgrad);
  check_step_counts(kOp, l.params, steps);
  check_adam_hyper(kOp, o);
}

/// Every argument check of normopt::sgd_step_.
inline void check_sgd_args(at::DeviceType device,
                           const SgdLists& l,
                           const SgdStepOptions& o) {
  constexpr const char* kOp = "normopt::sgd_step_";
  check_step_lists(kOp,
                   device,
                   l.params,
                   {{"grads", l.grads}},
                   {{"momentum_buffers", l.momentum_buffers}});
  TORCH_CHECK(o.lr >= 0, kOp, ": invalid learning rate ", o.lr);
  TORCH_CHECK(o.momentum == 0 || l.momentum_buffers.size() == l.params.size(),
              kOp,
              ": momentum ",
              o.momentum,
              " needs one momentum buffer per parameter, got ",
              l.momentum_buffers.size());
  TORCH_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
              kOp,
              ": Nesterov momentum requires a momentum and zero dampening");
}

}  // namespace normopt::ops::detail
