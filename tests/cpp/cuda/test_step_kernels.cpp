// The CUDA kernels of normopt::adam_step_ / sgd_step_ against the CPU
// kernel and against LibTorch's own optimizers on the same device. Skipped
// without a CUDA device (and so compiled against any LibTorch: c10/cuda's
// stream headers ship with the CPU builds too).
#include "../optim/step_reference.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <normopt/normopt.h>

#include <string>
#include <vector>

namespace {

using normopt::ops::AdamStepOptions;
using normopt::test::TensorVec;

}  // namespace

TEST(AdamStepCuda, MatchesCpuKernel_AllDtypesAndOptions) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  normopt::test::expect_adam_matches_cpu_kernel(
      normopt::test::kAdamOp, torch::kCUDA, normopt::test::cuda_launch_sizes());
}

TEST(SgdStepCuda, MatchesCpuKernel_AllDtypesAndOptions) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  normopt::test::expect_sgd_matches_cpu_kernel(
      normopt::test::kSgdOp, torch::kCUDA, normopt::test::cuda_launch_sizes());
}

// Launches go to the current stream: two steps issued on two side streams,
// each on its own tensors, equal the CPU kernel once both streams are done.
TEST(AdamStepCuda, RunsOnTheCurrentStream_TwoStreams) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  torch::manual_seed(2);
  const std::vector<int64_t> sizes = {3 * 65536 + 7, 1000};
  AdamStepOptions o;
  o.weight_decay = 0.01;
  TensorVec none;
  std::vector<TensorVec> p_cpu, m_cpu, v_cpu, p_gpu, m_gpu, v_gpu, g_cpu;
  for (int s = 0; s < 2; ++s) {
    p_cpu.push_back(normopt::test::random_list(sizes, torch::kFloat));
    m_cpu.push_back(normopt::test::random_list(sizes, torch::kFloat));
    v_cpu.push_back(normopt::test::random_list(sizes, torch::kFloat, true));
    g_cpu.push_back(normopt::test::random_list(sizes, torch::kFloat));
    p_gpu.push_back(normopt::test::copies_on(p_cpu[s], torch::kCUDA));
    m_gpu.push_back(normopt::test::copies_on(m_cpu[s], torch::kCUDA));
    v_gpu.push_back(normopt::test::copies_on(v_cpu[s], torch::kCUDA));
  }
  std::vector<c10::cuda::CUDAStream> streams = {c10::cuda::getStreamFromPool(),
                                                c10::cuda::getStreamFromPool()};
  // The side streams wait for the copies made on the default stream.
  torch::cuda::synchronize();
  for (int s = 0; s < 2; ++s) {
    const c10::cuda::CUDAStreamGuard guard(streams[s]);
    auto g = normopt::test::copies_on(g_cpu[s], torch::kCUDA);
    normopt::ops::adam_step_(p_gpu[s], g, m_gpu[s], v_gpu[s], none, {1, 1}, o);
    g.clear();  // freed on this stream, after the step was queued on it
  }
  for (auto& stream : streams) {
    stream.synchronize();
  }
  for (int s = 0; s < 2; ++s) {
    normopt::ops::adam_step_(
        p_cpu[s], g_cpu[s], m_cpu[s], v_cpu[s], none, {1, 1}, o);
    normopt::test::expect_close(p_gpu[s], p_cpu[s], 1e-5, "params");
    normopt::test::expect_close(m_gpu[s], m_cpu[s], 1e-5, "exp_avgs");
  }
}

TEST(AdamStepCuda, BadInput_NamesTheTensor) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  auto p = torch::zeros({4}, torch::kCUDA);
  auto cpu = torch::zeros({4});
  std::vector<torch::Tensor> ps{p}, gs{cpu}, ms{torch::zeros_like(p)},
      vs{torch::zeros_like(p)}, none;
  normopt::test::expect_error(
      [&] {
        normopt::ops::adam_step_(ps, gs, ms, vs, none, {1}, AdamStepOptions{});
      },
      {"normopt::adam_step_", "grads[0]"});
}
