// Links the installed normopt through find_package and checks one result.
#include <normopt/normopt.h>
#include <torch/torch.h>
#if NORMOPT_HAVE_DISTRIBUTED  // <normopt/config.h>, installed
#include <normopt/distributed/distributed.h>
#endif

#include <cmath>
#include <cstdio>

int main() {
  normopt::nn::Normalization norm;
  norm->adapt(torch::tensor({{1.0, 10.0}, {3.0, 30.0}}, torch::kFloat64));
  auto z = norm(torch::tensor({{3.0, 10.0}}, torch::kFloat64));
  const double a = z[0][0].item<double>(), b = z[0][1].item<double>();
  std::printf(
      "consumer: normopt %s (distributed %d, CUDA kernels %d), z = [%g, %g]\n",
      NORMOPT_VERSION,
      NORMOPT_HAVE_DISTRIBUTED,
      NORMOPT_HAVE_CUDA_KERNELS,
      a,
      b);
  return (std::abs(a - 1.0) < 1e-12 && std::abs(b + 1.0) < 1e-12) ? 0 : 1;
}
