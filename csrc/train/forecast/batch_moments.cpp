#include "batch_moments.h"

#include "../../util/prefetch.h"
#include "../batches.h"

#include <ATen/ATen.h>
#include <c10/util/intrusive_ptr.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <utility>

namespace normopt::train::detail {
namespace {

// The sums of each batch: one pass over its rows in the epoch's order,
// fetched some rows ahead (the order scatters them over the table).
template <typename TX, typename TY>
void sum_batches(const TX* __restrict__ x,
                 const TY* __restrict__ y,
                 int64_t n,
                 int64_t p,
                 int64_t k,
                 const int64_t* __restrict__ order,
                 int64_t batch,
                 const double* __restrict__ x_ref,
                 const double* __restrict__ y_ref,
                 EpochMoments& out) {
  std::vector<double> d_any(static_cast<size_t>(p)),
      e_any(static_cast<size_t>(k));
  double* __restrict__ d = d_any.data();
  double* __restrict__ e = e_any.data();
  for (int64_t b = 0; b < out.batches(); ++b) {
    const int64_t start = b * batch, end = std::min(n, start + batch);
    double* s = out.at(b);
    s[0] = static_cast<double>(end - start);
    double* __restrict__ sd = s + 1;
    double* __restrict__ se = sd + p;
    double* __restrict__ sdd = se + k;
    double* __restrict__ sde = sdd + p * p;
    for (int64_t r = start; r < end; ++r) {
      const int64_t row = order ? order[r] : r;
      util::prefetch_row_ahead(order, r, n, x, p, y, k);
      for (int64_t i = 0; i < p; ++i) {
        d[i] = static_cast<double>(x[row * p + i]) - x_ref[i];
        sd[i] += d[i];
      }
      for (int64_t j = 0; j < k; ++j) {
        e[j] = static_cast<double>(y[row * k + j]) - y_ref[j];
        se[j] += e[j];
      }
      for (int64_t i = 0; i < p; ++i) {
        for (int64_t a = 0; a <= i; ++a) {
          sdd[i * p + a] += d[i] * d[a];
        }
        for (int64_t j = 0; j < k; ++j) {
          sde[i * k + j] += d[i] * e[j];
        }
      }
    }
    for (int64_t i = 0; i < p; ++i) {
      for (int64_t a = i + 1; a < p; ++a) {
        sdd[i * p + a] = sdd[a * p + i];
      }
    }
  }
}

// The same for one target and P features known at compile time: the sums
// of a batch held in local variables (registers), written once per batch.
template <int P, typename TX, typename TY>
void sum_batches_small(const TX* __restrict__ x,
                       const TY* __restrict__ y,
                       int64_t n,
                       const int64_t* __restrict__ order,
                       int64_t batch,
                       const double* __restrict__ x_ref,
                       const double* __restrict__ y_ref,
                       EpochMoments& out) {
  double ref[P];
  for (int i = 0; i < P; ++i) {
    ref[i] = x_ref[i];
  }
  const double y0 = y_ref[0];
  for (int64_t b = 0; b < out.batches(); ++b) {
    const int64_t start = b * batch, end = std::min(n, start + batch);
    double sd[P] = {}, sdd[P][P] = {}, sde[P] = {}, se = 0;
    for (int64_t r = start; r < end; ++r) {
      const int64_t row = order ? order[r] : r;
      util::prefetch_row_ahead(order, r, n, x, int64_t{P}, y, int64_t{1});
      double d[P];
      for (int i = 0; i < P; ++i) {
        d[i] = static_cast<double>(x[row * P + i]) - ref[i];
        sd[i] += d[i];
      }
      const double e = static_cast<double>(y[row]) - y0;
      se += e;
      for (int i = 0; i < P; ++i) {
        for (int a = 0; a <= i; ++a) {
          sdd[i][a] += d[i] * d[a];
        }
        sde[i] += d[i] * e;
      }
    }
    double* s = out.at(b);
    s[0] = static_cast<double>(end - start);
    for (int i = 0; i < P; ++i) {
      s[1 + i] = sd[i];
    }
    s[1 + P] = se;
    double* dd = s + 2 + P;
    for (int i = 0; i < P; ++i) {
      for (int a = 0; a <= i; ++a) {
        dd[i * P + a] = dd[a * P + i] = sdd[i][a];
      }
      dd[P * P + i] = sde[i];
    }
  }
}

template <typename TX, typename TY>
void sum_batches_of(const TX* x,
                    const TY* y,
                    int64_t n,
                    int64_t p,
                    int64_t k,
                    const int64_t* order,
                    int64_t batch,
                    const double* x_ref,
                    const double* y_ref,
                    EpochMoments& out) {
#define NORMOPT_SUM_SMALL(P) \
  case P:                    \
    return sum_batches_small<P>(x, y, n, order, batch, x_ref, y_ref, out)
  if (k == 1) {
    switch (p) {
      NORMOPT_SUM_SMALL(1);
      NORMOPT_SUM_SMALL(2);
      NORMOPT_SUM_SMALL(3);
      NORMOPT_SUM_SMALL(4);
      NORMOPT_SUM_SMALL(5);
      NORMOPT_SUM_SMALL(6);
      NORMOPT_SUM_SMALL(7);
      NORMOPT_SUM_SMALL(8);
      default:
        break;
    }
  }
#undef NORMOPT_SUM_SMALL
  sum_batches(x, y, n, p, k, order, batch, x_ref, y_ref, out);
}

// x and y in one dtype: float32 when both are, float64 otherwise (exact for
// float32, float64 and the narrower dtypes), on the CPU.
std::pair<at::Tensor, at::Tensor> readable(const at::Tensor& x,
                                           const at::Tensor& y) {
  const bool single =
      x.scalar_type() == at::kFloat && y.scalar_type() == at::kFloat;
  const auto dtype = single ? at::kFloat : at::kDouble;
  return {x.to(at::kCPU, dtype).contiguous(),
          (y.dim() == 1 ? y.unsqueeze(1) : y).to(at::kCPU, dtype).contiguous()};
}

std::shared_ptr<const EpochMoments> compute(const BatchRows& rows,
                                            int64_t epoch) {
  const auto [x, y] = readable(rows.x, rows.y);
  const auto x_ref = rows.x_ref.contiguous();
  const auto y_ref = rows.y_ref.contiguous();
  const int64_t n = x.size(0), p = x.size(1), k = y.size(1);
  const int64_t batch = std::min(rows.batch, n);
  const auto order =
      rows.shuffle ? epoch_order(rows.seed, epoch, n) : at::Tensor();
  auto out = std::make_shared<EpochMoments>((n + batch - 1) / batch, p, k);
  const int64_t* o = order.defined() ? order.data_ptr<int64_t>() : nullptr;
  const double* xr = x_ref.data_ptr<double>();
  const double* yr = y_ref.data_ptr<double>();
  if (x.scalar_type() == at::kFloat) {
    sum_batches_of(x.data_ptr<float>(),
                   y.data_ptr<float>(),
                   n,
                   p,
                   k,
                   o,
                   batch,
                   xr,
                   yr,
                   *out);
  } else {
    sum_batches_of(x.data_ptr<double>(),
                   y.data_ptr<double>(),
                   n,
                   p,
                   k,
                   o,
                   batch,
                   xr,
                   yr,
                   *out);
  }
  return out;
}

bool same_values(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() == b.numel() &&
         std::memcmp(a.data_ptr<double>(),
                     b.data_ptr<double>(),
                     sizeof(double) * static_cast<size_t>(a.numel())) == 0;
}

struct Kept {
  TensorIdentity x, y;
  at::Tensor x_ref, y_ref;  // contiguous float64 copies
  int64_t batch;
  bool shuffle;
  uint64_t seed;
  int64_t epoch;
  std::shared_ptr<const EpochMoments> sums;

  bool matches(const BatchRows& r, int64_t e) const {
    return batch == r.batch && shuffle == r.shuffle &&
           (!shuffle || seed == r.seed) && epoch == e && x.same(r.x) &&
           y.same(r.y) && same_values(x_ref, r.x_ref) &&
           same_values(y_ref, r.y_ref);
  }
};

constexpr int64_t kKeptBytes = int64_t{64} << 20;
constexpr size_t kKeptEpochs = 256;

std::mutex kept_mutex;
std::list<Kept> kept;
int64_t kept_bytes = 0;

}  // namespace

TensorIdentity::TensorIdentity(const at::Tensor& t)
    : impl_(t.getIntrusivePtr()),
      data_(t.data_ptr()),
      sizes_(t.sizes().vec()),
      strides_(t.strides().vec()),
      dtype_(t.scalar_type()),
      device_(t.device()),
      version_(t._version()) {}

bool TensorIdentity::same(const at::Tensor& t) const {
  return !impl_.expired() &&
         impl_._unsafe_get_target() == t.unsafeGetTensorImpl() &&
         data_ == t.data_ptr() && t.sizes() == at::IntArrayRef(sizes_) &&
         t.strides() == at::IntArrayRef(strides_) &&
         dtype_ == t.scalar_type() && device_ == t.device() &&
         version_ == t._version();
}

bool batch_sums_pay(int64_t p, int64_t k, int64_t batch) {
  return 1 + p + k + p * p + p * k <= batch * (p + k);
}

std::shared_ptr<const EpochMoments> epoch_moments(const BatchRows& rows,
                                                  int64_t epoch) {
  // Inference tensors have no version to tell a change by: summed anew.
  const bool keepable = !rows.x.is_inference() && !rows.y.is_inference();
  BatchRows r = rows;
  r.x_ref = rows.x_ref.to(at::kDouble).contiguous();
  r.y_ref = rows.y_ref.to(at::kDouble).contiguous();
  if (keepable) {
    std::lock_guard<std::mutex> lock(kept_mutex);
    for (auto it = kept.begin(); it != kept.end();) {
      if (it->x.expired() || it->y.expired()) {  // a table no longer there
        kept_bytes -= it->sums->bytes();
        it = kept.erase(it);
      } else if (it->matches(r, epoch)) {
        kept.splice(kept.begin(), kept, it);
        return it->sums;
      } else {
        ++it;
      }
    }
  }
  auto sums = compute(r, epoch);
  if (!keepable || sums->bytes() > kKeptBytes) {
    return sums;
  }
  std::lock_guard<std::mutex> lock(kept_mutex);
  kept.push_front(Kept{TensorIdentity(r.x),
                       TensorIdentity(r.y),
                       r.x_ref.clone(),
                       r.y_ref.clone(),
                       r.batch,
                       r.shuffle,
                       r.seed,
                       epoch,
                       sums});
  kept_bytes += sums->bytes();
  while (kept_bytes > kKeptBytes || kept.size() > kKeptEpochs) {
    kept_bytes -= kept.back().sums->bytes();
    kept.pop_back();
  }
  return sums;
}

}  // namespace normopt::train::detail
