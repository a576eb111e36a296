// Picks the optimizer-step build for this CPU (see optim_step_kernel.h).
#include "optim_step_kernel.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

namespace normopt::ops::cpu {

void adam_apply_DEFAULT(c10::ArrayRef<AdamTensor>, const AdamStepOptions&);
void sgd_apply_DEFAULT(c10::ArrayRef<SgdTensor>, const SgdStepOptions&);
#if defined(NORMOPT_HAVE_AVX2_BUILD)
void adam_apply_AVX2(c10::ArrayRef<AdamTensor>, const AdamStepOptions&);
void sgd_apply_AVX2(c10::ArrayRef<SgdTensor>, const SgdStepOptions&);
#endif
#if defined(NORMOPT_HAVE_AVX512_BUILD)
void adam_apply_AVX512(c10::ArrayRef<AdamTensor>, const AdamStepOptions&);
void sgd_apply_AVX512(c10::ArrayRef<SgdTensor>, const SgdStepOptions&);
#endif

namespace {

int detect() {
  int best = 0;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
#if defined(NORMOPT_HAVE_AVX2_BUILD)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    best = 1;
  }
#endif
#if defined(NORMOPT_HAVE_AVX512_BUILD)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    best = 2;
  }
#endif
#endif
  // ATen's own switch, honoured the same way: it can only lower the level.
  if (const char* env = std::getenv("ATEN_CPU_CAPABILITY")) {
    int cap = best;
    if (std::strcmp(env, "default") == 0)
      cap = 0;
    if (std::strcmp(env, "avx2") == 0)
      cap = 1;
    if (std::strcmp(env, "avx512") == 0)
      cap = 2;
    best = std::min(best, cap);
  }
  return best;
}

}  // namespace

int cpu_capability() {
  static const int cap = detect();
  return cap;
}

namespace {

// The entry points of one build.
struct Build {
  void (*adam)(c10::ArrayRef<AdamTensor>, const AdamStepOptions&);
  void (*sgd)(c10::ArrayRef<SgdTensor>, const SgdStepOptions&);
};

const Build& build() {
  static const Build b = []() -> Build {
    switch (cpu_capability()) {
#if defined(NORMOPT_HAVE_AVX512_BUILD)
      case 2:
        return {&adam_apply_AVX512, &sgd_apply_AVX512};
#endif
#if defined(NORMOPT_HAVE_AVX2_BUILD)
      case 1:
        return {&adam_apply_AVX2, &sgd_apply_AVX2};
#endif
      default:
        return {&adam_apply_DEFAULT, &sgd_apply_DEFAULT};
    }
  }();
  return b;
}

}  // namespace

void adam_apply(c10::ArrayRef<AdamTensor> tensors, const AdamStepOptions& o) {
  build().adam(tensors, o);
}

void sgd_apply(c10::ArrayRef<SgdTensor> tensors, const SgdStepOptions& o) {
  build().sgd(tensors, o);
}

}  // namespace normopt::ops::cpu
