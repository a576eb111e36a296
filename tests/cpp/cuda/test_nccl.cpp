// normopt::distributed on NCCL, one process (world size 1): the collectives
// run on the GPU, and data-parallel fit equals train::fit. Skipped without a
// CUDA device; built when normopt has NCCL (NORMOPT_HAVE_NCCL).
#include "../common.h"

#include <normopt/distributed/distributed.h>
#include <normopt/normopt.h>

#include <cstdlib>
#include <string>

namespace {

normopt::nn::StandardizedRegressor cuda_model() {
  torch::manual_seed(0);
  normopt::nn::StandardizedRegressor model(normopt::nn::LinearRegressor(2));
  model->to(torch::kCUDA);
  return model;
}

}  // namespace

TEST(DistributedNccl, WorldSizeOne_FitEqualsOneProcess) {
  NORMOPT_SKIP_WITHOUT_CUDA();
  ::setenv("RANK", "0", 1);
  ::setenv("WORLD_SIZE", "1", 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv(
      "MASTER_PORT", std::to_string(20000 + ::getpid() % 20000).c_str(), 1);
  auto group = normopt::distributed::init_process_group(
      normopt::distributed::InitOptions().backend("nccl"));
  EXPECT_EQ(group->getBackendType(), c10d::ProcessGroup::BackendType::NCCL);

  const auto table = normopt::data::synthetic_income(300, 2);
  const auto options =
      normopt::train::FitOptions().epochs(10).batch_size(64).progress(
          normopt::train::Progress::kOff);
  auto ours = cuda_model();
  normopt::optim::Adam adam(ours->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  const auto h1 = normopt::distributed::fit(ours, adam, table, options, *group);
  auto plain = cuda_model();
  normopt::optim::Adam adam2(plain->parameters(),
                             normopt::optim::AdamOptions(1e-2));
  const auto h2 = normopt::train::fit(plain, adam2, table, options);

  ASSERT_EQ(h1.epochs.size(), h2.epochs.size());
  for (size_t e = 0; e < h1.epochs.size(); ++e) {
    EXPECT_NEAR(h1.epochs[e].train_mse / h2.epochs[e].train_mse, 1.0, 1e-6)
        << "epoch " << e + 1;
  }
  EXPECT_EQ(ours->parameters().front().device().type(), torch::kCUDA);
  const auto pa = ours->parameters(), pb = plain->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::allclose(pa[i].cpu(), pb[i].cpu(), 1e-5, 1e-6)) << i;
  }
}
