// CUDA kernels of normopt::adam_step_, adam_step_capturable_ and
// sgd_step_: multi-tensor launches over the whole list (a small model's step
// is one launch), the same per-element arithmetic as the CPU kernel
// (optim_step_kernel.cpp), in at::opmath_type (float for
// float16/bfloat16/float32, double for float64), on the current stream.
//
// The ops share one kernel loop (step_kernel) and one host-side launcher
// (launch_step); they differ only in their per-element update, a functor
// (AdamUpdate, AdamCapturableUpdate, SgdUpdate). Each launch carries up to
// kMaxTensors tensors and kMaxChunks chunks of kChunk elements in its
// (by-value, < 4 KB) kernel arguments; a block processes one chunk, each
// thread kILP elements per iteration with all loads issued before any
// arithmetic, so the loop is bound by memory bandwidth, which is what an
// optimizer step is (28 bytes per fp32 Adam parameter: param, grad,
// exp_avg, exp_avg_sq read; three written).
//
// adam_step_capturable_ (torch.optim's capturable=True) reads nothing on the
// host: one _foreach_add_ advances the step counts on the device, then each
// block reads its tensor's count from device memory and computes the bias
// corrections itself (adam_bias_correction, the host's formula), so a CUDA
// graph can capture the step and every replay uses the current count.
#include "../../util/library.h"
#include "../adam_bias_correction.h"
#include "../optim_step_checks.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <cstdint>
#include <vector>

namespace normopt::ops {
namespace {

constexpr int kBlock = 512;
constexpr int kILP = 4;
constexpr int64_t kChunk = 65536;
constexpr int kMaxTensors = 36;
constexpr int kMaxChunks = 256;

// The tensors and chunks of one launch. Depth: lists per step (Adam: param,
// grad, exp_avg, exp_avg_sq, max_exp_avg_sq; SGD: param, grad,
// momentum_buffer); list 0 is the parameter, list 1 the gradient (read
// only). scalar: two per-tensor constants (Adam: step size and
// sqrt(1 - beta2^t), which depend on the tensor's own step count). step: the
// tensor's step count in device memory (capturable Adam; null otherwise),
// from which the kernel computes the two constants instead.
template <int Depth>
struct LaunchArgs {
  void* ptr[Depth][kMaxTensors];
  int64_t numel[kMaxTensors];
  double scalar[2][kMaxTensors];
  const void* step[kMaxTensors];
  uint8_t chunk_tensor[kMaxChunks];
  int32_t chunk_index[kMaxChunks];
};
// The update functor is the kernel's other argument (<= 128 bytes, asserted
// below each one).
static_assert(sizeof(LaunchArgs<5>) + 128 < 4096,
              "kernel arguments must stay under CUDA's 4 KB limit");

// The CPU kernel's adam_scalar, operation for operation. Constants that do
// not depend on the element are computed once, on the host, in double.
struct AdamUpdate {
  static constexpr bool kStepOnDevice = false;
  double beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
      eps;
  bool amsgrad, maximize, decoupled;

  template <typename T>
  __device__ __forceinline__ void operator()(T (&x)[5],
                                             T step_size,
                                             T bc2_sqrt) const {
    T& p = x[0];
    T g = maximize ? -x[1] : x[1];
    T& m = x[2];
    T& v = x[3];
    if (weight_decay != 0) {
      if (decoupled) {
        p = p * T(decay);
      } else {
        g = g + T(weight_decay) * p;
      }
    }
    m = m * T(beta1) + g * T(one_minus_beta1);
    v = v * T(beta2) + T(one_minus_beta2) * g * g;
    T vv = v;
    if (amsgrad) {
      x[4] = x[4] > v ? x[4] : v;
      vv = x[4];
    }
    const T denom = ::sqrt(vv) / bc2_sqrt + T(eps);
    p = p + -step_size * m / denom;
  }
};
static_assert(sizeof(AdamUpdate) <= 128, "see LaunchArgs");

// AdamUpdate whose two per-tensor constants come from the step count in
// device memory (float32 or float64, one dtype per call), already advanced
// for this step.
struct AdamCapturableUpdate : AdamUpdate {
  static constexpr bool kStepOnDevice = true;
  double lr;
  bool keras_epsilon, step_is_double;

  __device__ __forceinline__ detail::AdamBiasCorrection bias_correction(
      const void* step) const {
    const double t =
        step_is_double ? *static_cast<const double*>(step)
                       : static_cast<double>(*static_cast<const float*>(step));
    return detail::adam_bias_correction(lr, beta1, beta2, t, keras_epsilon);
  }
};
static_assert(sizeof(AdamCapturableUpdate) <= 128, "see LaunchArgs");

// The CPU kernel's sgd_scalar, operation for operation.
struct SgdUpdate {
  static constexpr bool kStepOnDevice = false;
  double neg_lr, momentum, one_minus_dampening, weight_decay;
  bool with_buffer, nesterov, maximize, first;

  template <typename T>
  __device__ __forceinline__ void operator()(T (&x)[3], T, T) const {
    T& p = x[0];
    T g = maximize ? -x[1] : x[1];
    if (weight_decay != 0) {
      g = g + T(weight_decay) * p;
    }
    if (with_buffer) {
      T& buf = x[2];
      buf = first ? g : buf * T(momentum) + T(one_minus_dampening) * g;
      g = nesterov ? g + T(momentum) * buf : buf;
    }
    p = p + T(neg_lr) * g;
  }
};
static_assert(sizeof(SgdUpdate) <= 128, "see LaunchArgs");

// The loop the ops share. Block b updates chunk b of the launch: each
// thread loads kILP elements of every list (all loads before any
// arithmetic), `update` changes them in opmath_t, and every list but the
// gradient is stored back. A list without tensors (no momentum buffer, no
// amsgrad maximum) has null pointers: it is neither loaded nor stored. The
// two per-tensor constants come from the launch's scalars or, for a step
// count on the device (Update::kStepOnDevice), from `update`.
template <typename scalar_t, int Depth, typename Update>
__global__ void __launch_bounds__(kBlock)
    step_kernel(LaunchArgs<Depth> a, Update update) {
  using T = at::opmath_type<scalar_t>;
  const int slot = a.chunk_tensor[blockIdx.x];
  const int64_t begin =
      static_cast<int64_t>(a.chunk_index[blockIdx.x]) * kChunk;
  const int64_t end =
      begin + kChunk < a.numel[slot] ? begin + kChunk : a.numel[slot];
  scalar_t* ptr[Depth];
#pragma unroll
  for (int d = 0; d < Depth; ++d) {
    ptr[d] = static_cast<scalar_t*>(a.ptr[d][slot]);
  }
  T s0, s1;
  if constexpr (Update::kStepOnDevice) {
    const detail::AdamBiasCorrection bc = update.bias_correction(a.step[slot]);
    s0 = static_cast<T>(bc.step_size);
    s1 = static_cast<T>(bc.bc2_sqrt);
  } else {
    s0 = static_cast<T>(a.scalar[0][slot]);
    s1 = static_cast<T>(a.scalar[1][slot]);
  }
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  for (int64_t base = begin + threadIdx.x; base < end; base += stride) {
    T r[kILP][Depth];
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
#pragma unroll
      for (int d = 0; d < Depth; ++d) {
        r[k][d] = i < end && ptr[d] ? static_cast<T>(ptr[d][i]) : T(0);
      }
    }
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i >= end) {
        continue;
      }
      update(r[k], s0, s1);
#pragma unroll
      for (int d = 0; d < Depth; ++d) {
        if (d != 1 && ptr[d]) {
          ptr[d][i] = static_cast<scalar_t>(r[k][d]);
        }
      }
    }
  }
}

// Splits the tensors `order` (indices into the lists) into launches;
// set(args, slot, index) fills one tensor's slot, launch(args, chunks) runs
// one.
template <int Depth, typename Set, typename Launch>
void for_each_launch(const std::vector<size_t>& order,
                     at::TensorList params,
                     const Set& set,
                     const Launch& launch) {
  LaunchArgs<Depth> args;
  int slot = 0;
  int chunks = 0;
  for (const size_t i : order) {
    const int64_t n = params[i].numel();
    if (n == 0) {
      continue;
    }
    set(args, slot, i);
    const int64_t n_chunks = (n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < n_chunks; ++c) {
      args.chunk_tensor[chunks] = static_cast<uint8_t>(slot);
      args.chunk_index[chunks] = static_cast<int32_t>(c);
      ++chunks;
      const bool last = c + 1 == n_chunks;
      if (chunks == kMaxChunks || (last && slot + 1 == kMaxTensors)) {
        launch(args, chunks);
        chunks = 0;
        if (last) {
          slot = -1;  // the next tensor starts at slot 0
        } else {
          set(args, 0, i);  // the rest of this tensor, from slot 0
          slot = 0;
        }
      }
    }
    ++slot;
  }
  if (chunks > 0) {
    launch(args, chunks);
  }
}

// The list's tensor indices grouped by dtype (a launch has one dtype), in
// order of first appearance.
std::vector<std::vector<size_t>> by_dtype(at::TensorList params) {
  std::vector<std::vector<size_t>> groups;
  std::vector<at::ScalarType> types;
  for (size_t i = 0; i < params.size(); ++i) {
    size_t g = 0;
    while (g < types.size() && types[g] != params[i].scalar_type()) {
      ++g;
    }
    if (g == types.size()) {
      types.push_back(params[i].scalar_type());
      groups.emplace_back();
    }
    groups[g].push_back(i);
  }
  return groups;
}

// Runs `update` over index-aligned lists (lists[0] the parameters; an empty
// list stands for null pointers) on the parameters' device and current
// stream. scalars(i) gives tensor i's two per-tensor constants; `steps`, when
// given, the step counts an Update with kStepOnDevice reads instead.
template <int Depth, typename Update, typename Scalars>
void launch_step(const char* op,
                 const std::array<at::TensorList, Depth>& lists,
                 const Update& update,
                 const Scalars& scalars,
                 at::TensorList steps = {}) {
  const at::TensorList params = lists[0];
  if (params.empty()) {
    return;
  }
  for (size_t i = 1; i < params.size(); ++i) {
    TORCH_CHECK(params[i].device() == params[0].device(),
                op,
                ": params[",
                i,
                "] is on ",
                params[i].device(),
                " but params[0] on ",
                params[0].device(),
                "; a fused step runs on one device (one call per device)");
  }
  const c10::cuda::CUDAGuard guard(params[0].device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto set = [&](LaunchArgs<Depth>& a, int slot, size_t i) {
    for (int d = 0; d < Depth; ++d) {
      a.ptr[d][slot] = lists[d].empty()
                           ? nullptr
                           : const_cast<void*>(lists[d][i].const_data_ptr());
    }
    a.numel[slot] = params[i].numel();
    const std::array<double, 2> s = scalars(i);
    a.scalar[0][slot] = s[0];
    a.scalar[1][slot] = s[1];
    a.step[slot] = steps.empty() ? nullptr : steps[i].const_data_ptr();
  };
  for (const auto& order : by_dtype(params)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf,
        at::kBFloat16,
        params[order[0]].scalar_type(),
        "normopt step (CUDA)",
        [&] {
          for_each_launch<Depth>(
              order, params, set, [&](const LaunchArgs<Depth>& a, int chunks) {
                step_kernel<scalar_t, Depth>
                    <<<chunks, kBlock, 0, stream>>>(a, update);
                C10_CUDA_KERNEL_LAUNCH_CHECK();
              });
        });
  }
}

// AdamUpdate's host-side constants.
AdamUpdate adam_update(const AdamStepOptions& o) {
  return {o.beta1,
          1 - o.beta1,
          o.beta2,
          1 - o.beta2,
          o.weight_decay,
          1 - o.lr * o.weight_decay,
          o.eps,
          o.amsgrad,
          o.maximize,
          o.decoupled_weight_decay};
}

// The lists a launch reads: max_exp_avg_sqs only with amsgrad.
std::array<at::TensorList, 5> adam_lists(const detail::AdamLists& l,
                                         bool amsgrad) {
  return {l.params,
          l.grads,
          l.exp_avgs,
          l.exp_avg_sqs,
          amsgrad ? l.max_exp_avg_sqs : at::TensorList()};
}

void adam_cuda(const detail::AdamLists& l,
               at::IntArrayRef steps,
               const AdamStepOptions& o) {
  detail::check_adam_args(at::kCUDA, l, steps, o);
  launch_step<5>("normopt::adam_step_",
                 adam_lists(l, o.amsgrad),
                 adam_update(o),
                 [&](size_t i) {
                   const auto bc = detail::adam_bias_correction(
                       o.lr,
                       o.beta1,
                       o.beta2,
                       static_cast<double>(steps[i]),
                       o.keras_epsilon);
                   return std::array<double, 2>{bc.step_size, bc.bc2_sqrt};
                 });
}

void adam_cuda(const detail::AdamLists& l,
               at::TensorList state_steps,
               const AdamStepOptions& o) {
  detail::check_adam_args(at::kCUDA, l, state_steps, o);
  if (l.params.empty()) {
    return;
  }
  // On the current stream, before the launches that read the counts.
  at::_foreach_add_(state_steps, at::Scalar(1));
  const AdamCapturableUpdate update{
      adam_update(o),
      o.lr,
      o.keras_epsilon,
      state_steps[0].scalar_type() == at::kDouble};
  launch_step<5>(
      "normopt::adam_step_capturable_",
      adam_lists(l, o.amsgrad),
      update,
      [](size_t) {
        return std::array<double, 2>{0, 0};
      },
      state_steps);
}

void sgd_cuda(const detail::SgdLists& l, const SgdStepOptions& o) {
  detail::check_sgd_args(at::kCUDA, l, o);
  const bool with_buffer = o.momentum != 0;
  const SgdUpdate update{-o.lr,
                         o.momentum,
                         1 - o.dampening,
                         o.weight_decay,
                         with_buffer,
                         o.nesterov,
                         o.maximize,
                         o.is_first_step};
  launch_step<3>(
      "normopt::sgd_step_",
      {l.params, l.grads, with_buffer ? l.momentum_buffers : at::TensorList()},
      update,
      [](size_t) {
        return std::array<double, 2>{0, 0};
      });
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CUDA, m) {
  using detail::adam_entry;
  m.impl("adam_step_", &adam_entry<at::IntArrayRef, &adam_cuda>);
  m.impl("adam_step_capturable_", &adam_entry<at::TensorList, &adam_cuda>);
  m.impl("sgd_step_", &detail::sgd_entry<&sgd_cuda>);
}

}  // namespace normopt::ops
