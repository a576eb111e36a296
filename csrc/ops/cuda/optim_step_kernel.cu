// CUDA kernels of normopt::adam_step_ and normopt::sgd_step_: multi-tensor
// launches over the whole list (a small model's step is one launch), the
// same per-element arithmetic as the CPU kernel (optim_step_impl.cpp), in
// at::opmath_type (float for float16/bfloat16/float32, double for float64),
// on the current stream.
//
// Each launch carries up to kMaxTensors tensors and kMaxChunks chunks of
// kChunk elements in its (by-value, < 4 KB) kernel arguments; a block
// processes one chunk, each thread kILP elements per iteration with all
// loads issued before any arithmetic, so the loop is bound by memory
// bandwidth, which is what an optimizer step is (28 bytes per fp32 Adam
// parameter: param, grad, exp_avg, exp_avg_sq read; three written).
#include "../library.h"
#include "../optim_step_checks.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace normopt::ops {
namespace {

constexpr int kBlock = 512;
constexpr int kILP = 4;
constexpr int64_t kChunk = 65536;
constexpr int kMaxTensors = 36;
constexpr int kMaxChunks = 256;

// The tensors and chunks of one launch. Depth: pointers per tensor (Adam:
// param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq; SGD: param, grad,
// momentum_buffer). scalar: per-tensor constants (Adam: step size and
// sqrt(1 - beta2^t), which depend on the tensor's own step count).
template <int Depth>
struct LaunchArgs {
  void* ptr[Depth][kMaxTensors];
  int64_t numel[kMaxTensors];
  double scalar[2][kMaxTensors];
  uint8_t chunk_tensor[kMaxChunks];
  int32_t chunk_index[kMaxChunks];
};
static_assert(sizeof(LaunchArgs<5>) + 128 < 4096,
              "kernel arguments must stay under CUDA's 4 KB limit");

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first;
};

// Splits the tensors `order` (indices into a list) into launches; set(args,
// slot, index) fills one tensor's slot, launch(args, chunks) runs one.
template <int Depth, typename Set, typename Launch>
void for_each_launch(const std::vector<size_t>& order,
                     const std::vector<int64_t>& numels,
                     const Set& set,
                     const Launch& launch) {
  LaunchArgs<Depth> args;
  int slot = 0;
  int chunks = 0;
  for (const size_t i : order) {
    const int64_t n = numels[i];
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

// [begin, end) of the chunk this block processes, and its tensor's slot.
template <int Depth>
__device__ __forceinline__ void chunk_range(const LaunchArgs<Depth>& a,
                                            int& slot,
                                            int64_t& begin,
                                            int64_t& end) {
  slot = a.chunk_tensor[blockIdx.x];
  begin = static_cast<int64_t>(a.chunk_index[blockIdx.x]) * kChunk;
  end = begin + kChunk < a.numel[slot] ? begin + kChunk : a.numel[slot];
}

// The CPU kernel's adam_scalar, operation for operation.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    adam_kernel(LaunchArgs<5> a, AdamHyper h) {
  using T = at::opmath_type<scalar_t>;
  int slot;
  int64_t begin, end;
  chunk_range(a, slot, begin, end);
  auto* p = static_cast<scalar_t*>(a.ptr[0][slot]);
  const auto* g = static_cast<const scalar_t*>(a.ptr[1][slot]);
  auto* m = static_cast<scalar_t*>(a.ptr[2][slot]);
  auto* v = static_cast<scalar_t*>(a.ptr[3][slot]);
  auto* vmax = h.amsgrad ? static_cast<scalar_t*>(a.ptr[4][slot]) : nullptr;
  const T b1 = T(h.beta1), one_minus_b1 = T(1 - h.beta1);
  const T b2 = T(h.beta2), one_minus_b2 = T(1 - h.beta2);
  const T wd = T(h.weight_decay), decay = T(1 - h.lr * h.weight_decay);
  const T eps = T(h.eps);
  const T neg_step = T(-a.scalar[0][slot]), bc2_sqrt = T(a.scalar[1][slot]);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  for (int64_t base = begin + threadIdx.x; base < end; base += stride) {
    T rp[kILP], rg[kILP], rm[kILP], rv[kILP], rx[kILP];
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < end) {
        rp[k] = static_cast<T>(p[i]);
        rg[k] = static_cast<T>(g[i]);
        rm[k] = static_cast<T>(m[i]);
        rv[k] = static_cast<T>(v[i]);
        rx[k] = vmax ? static_cast<T>(vmax[i]) : T(0);
      }
    }
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i >= end) {
        continue;
      }
      T gi = h.maximize ? -rg[k] : rg[k];
      T pi = rp[k];
      if (h.weight_decay != 0) {
        if (h.decoupled) {
          pi = pi * decay;
        } else {
          gi = gi + wd * pi;
        }
      }
      const T mi = rm[k] * b1 + gi * one_minus_b1;
      const T vi = rv[k] * b2 + one_minus_b2 * gi * gi;
      T vv = vi;
      if (vmax) {
        vv = rx[k] > vi ? rx[k] : vi;
        vmax[i] = static_cast<scalar_t>(vv);
      }
      const T denom = ::sqrt(vv) / bc2_sqrt + eps;
      p[i] = static_cast<scalar_t>(pi + neg_step * mi / denom);
      m[i] = static_cast<scalar_t>(mi);
      v[i] = static_cast<scalar_t>(vi);
    }
  }
}

// The CPU kernel's sgd_scalar, operation for operation.
template <typename scalar_t>
__global__ void __launch_bounds__(kBlock)
    sgd_kernel(LaunchArgs<3> a, SgdHyper h) {
  using T = at::opmath_type<scalar_t>;
  int slot;
  int64_t begin, end;
  chunk_range(a, slot, begin, end);
  auto* p = static_cast<scalar_t*>(a.ptr[0][slot]);
  const auto* g = static_cast<const scalar_t*>(a.ptr[1][slot]);
  auto* buf = static_cast<scalar_t*>(a.ptr[2][slot]);
  const T wd = T(h.weight_decay), mom = T(h.momentum);
  const T damp = T(1 - h.dampening), neg_lr = T(-h.lr);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  for (int64_t base = begin + threadIdx.x; base < end; base += stride) {
    T rp[kILP], rg[kILP], rb[kILP];
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i < end) {
        rp[k] = static_cast<T>(p[i]);
        rg[k] = static_cast<T>(g[i]);
        rb[k] = buf && !h.first ? static_cast<T>(buf[i]) : T(0);
      }
    }
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t i = base + static_cast<int64_t>(k) * blockDim.x;
      if (i >= end) {
        continue;
      }
      T gi = h.maximize ? -rg[k] : rg[k];
      const T pi = rp[k];
      if (h.weight_decay != 0) {
        gi = gi + wd * pi;
      }
      if (buf) {
        const T bi = h.first ? gi : rb[k] * mom + damp * gi;
        buf[i] = static_cast<scalar_t>(bi);
        gi = h.nesterov ? gi + mom * bi : bi;
      }
      p[i] = static_cast<scalar_t>(pi + neg_lr * gi);
    }
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

void check_one_device(const char* op, at::TensorList params) {
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
}

std::vector<int64_t> numels_of(at::TensorList params) {
  std::vector<int64_t> out(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    out[i] = params[i].numel();
  }
  return out;
}

void adam_step_cuda(at::TensorList params,
                    at::TensorList grads,
                    at::TensorList exp_avgs,
                    at::TensorList exp_avg_sqs,
                    at::TensorList max_exp_avg_sqs,
                    at::IntArrayRef steps,
                    double lr,
                    double beta1,
                    double beta2,
                    double eps,
                    double weight_decay,
                    bool amsgrad,
                    bool maximize,
                    bool decoupled_weight_decay,
                    bool keras_epsilon) {
  detail::check_adam_step_args(at::kCUDA,
                               params,
                               grads,
                               exp_avgs,
                               exp_avg_sqs,
                               max_exp_avg_sqs,
                               steps,
                               lr,
                               beta1,
                               beta2,
                               eps,
                               amsgrad);
  if (params.empty()) {
    return;
  }
  check_one_device("normopt::adam_step_", params);
  const c10::cuda::CUDAGuard guard(params[0].device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const AdamHyper h{lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    amsgrad,
                    maximize,
                    decoupled_weight_decay};
  const auto numels = numels_of(params);
  auto set = [&](LaunchArgs<5>& a, int slot, size_t i) {
    a.ptr[0][slot] = params[i].data_ptr();
    a.ptr[1][slot] = const_cast<void*>(grads[i].const_data_ptr());
    a.ptr[2][slot] = exp_avgs[i].data_ptr();
    a.ptr[3][slot] = exp_avg_sqs[i].data_ptr();
    a.ptr[4][slot] = amsgrad ? max_exp_avg_sqs[i].data_ptr() : nullptr;
    a.numel[slot] = numels[i];
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(steps[i]));
    const double bc2 = 1 - std::pow(beta2, static_cast<double>(steps[i]));
    a.scalar[0][slot] = keras_epsilon ? lr * std::sqrt(bc2) / bc1 : lr / bc1;
    a.scalar[1][slot] = keras_epsilon ? 1.0 : std::sqrt(bc2);
  };
  for (const auto& order : by_dtype(params)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf,
                                    at::kBFloat16,
                                    params[order[0]].scalar_type(),
                                    "normopt::adam_step_",
                                    [&] {
                                      for_each_launch<5>(
                                          order,
                                          numels,
                                          set,
                                          [&](const LaunchArgs<5>& a,
                                              int chunks) {
                                            adam_kernel<scalar_t>
                                                <<<chunks, kBlock, 0, stream>>>(
                                                    a, h);
                                            C10_CUDA_KERNEL_LAUNCH_CHECK();
                                          });
                                    });
  }
}

void sgd_step_cuda(at::TensorList params,
                   at::TensorList grads,
                   at::TensorList momentum_buffers,
                   double lr,
                   double momentum,
                   double dampening,
                   double weight_decay,
                   bool nesterov,
                   bool maximize,
                   bool is_first_step) {
  detail::check_sgd_step_args(at::kCUDA,
                              params,
                              grads,
                              momentum_buffers,
                              lr,
                              momentum,
                              dampening,
                              nesterov);
  if (params.empty()) {
    return;
  }
  check_one_device("normopt::sgd_step_", params);
  const c10::cuda::CUDAGuard guard(params[0].device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const SgdHyper h{
      lr, momentum, dampening, weight_decay, nesterov, maximize, is_first_step};
  const bool with_buf = momentum != 0;
  const auto numels = numels_of(params);
  auto set = [&](LaunchArgs<3>& a, int slot, size_t i) {
    a.ptr[0][slot] = params[i].data_ptr();
    a.ptr[1][slot] = const_cast<void*>(grads[i].const_data_ptr());
    a.ptr[2][slot] = with_buf ? momentum_buffers[i].data_ptr() : nullptr;
    a.numel[slot] = numels[i];
  };
  for (const auto& order : by_dtype(params)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf,
                                    at::kBFloat16,
                                    params[order[0]].scalar_type(),
                                    "normopt::sgd_step_",
                                    [&] {
                                      for_each_launch<3>(
                                          order,
                                          numels,
                                          set,
                                          [&](const LaunchArgs<3>& a,
                                              int chunks) {
                                            sgd_kernel<scalar_t>
                                                <<<chunks, kBlock, 0, stream>>>(
                                                    a, h);
                                            C10_CUDA_KERNEL_LAUNCH_CHECK();
                                          });
                                    });
  }
}

}  // namespace

NORMOPT_LIBRARY_IMPL(CUDA, m) {
  m.impl("adam_step_", &adam_step_cuda);
  m.impl("sgd_step_", &sgd_step_cuda);
}

}  // namespace normopt::ops
