// normopt::distributed's choice of c10d backend: an unknown one, or NCCL
// where it cannot run, is refused before any port is opened (the
// multi-process behaviour is tested by tests/python/test_distributed.py).
#include "../common.h"

#include <normopt/config.h>
#include <normopt/distributed/distributed.h>

using normopt::distributed::InitOptions;
using normopt::test::expect_error;

TEST(DistributedInit, UnknownBackend_Refused) {
  expect_error(
      [] {
        normopt::distributed::init_process_group(InitOptions().backend("mpi"));
      },
      {"unknown backend 'mpi'", "expected 'gloo' or 'nccl'"});
}

TEST(DistributedInit, NcclWhereItCannotRun_Refused) {
  if (NORMOPT_HAVE_NCCL && torch::cuda::is_available()) {
    GTEST_SKIP() << "NCCL can run here: tests/cpp/cuda/test_nccl.cpp covers it";
  }
  const char* why = NORMOPT_HAVE_NCCL
                        ? "needs a CUDA device and none is visible"
                        : "NORMOPT_HAVE_NCCL is 0";
  expect_error(
      [] {
        normopt::distributed::init_process_group(InitOptions().backend("nccl"));
      },
      {"backend 'nccl'", why, "use 'gloo'"});
}
