// normopt on c10d: a Gloo (or NCCL) process group from the environment,
// statistics of the union of the shards, and gradient all-reduce for
// data-parallel fit.
#include <normopt/config.h>
#include <normopt/data/detail/csv_range.h>
#include <normopt/distributed/distributed.h>
#include <normopt/ops/moments.h>

#include <ATen/ATen.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if NORMOPT_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace normopt::distributed {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  TORCH_CHECK(v != nullptr && *v != '\0',
              "normopt::distributed::init_process_group: environment variable ",
              name,
              " is not set; start the program with scripts/launch.sh -n N, or "
              "set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
  return v;
}

int64_t env_int(const char* name, int64_t lo, int64_t hi) {
  const std::string v = env(name);
  int64_t value = -1;
  try {
    size_t used = 0;
    value = std::stoll(v, &used);
    TORCH_CHECK(used == v.size(), "");
  } catch (...) {
    value = lo - 1;
  }
  TORCH_CHECK(value >= lo && value <= hi,
              "normopt::distributed::init_process_group: ",
              name,
              "=",
              v,
              " must be an integer in [",
              lo,
              ", ",
              hi,
              "]");
  return value;
}

// Where the group's collectives take their tensors: NCCL's on this rank's
// current CUDA device, Gloo's on the CPU.
at::Device collective_device(const c10d::ProcessGroup& group) {
  if (group.getBackendType() == c10d::ProcessGroup::BackendType::NCCL) {
    return c10::impl::getDeviceGuardImpl(at::kCUDA)->getDevice();
  }
  return at::kCPU;
}

// Every rank's tensor of the same shape, in rank order, on mine's device.
std::vector<at::Tensor> all_gather(const at::Tensor& mine,
                                   c10d::ProcessGroup& group) {
  std::vector<at::Tensor> input{mine.to(collective_device(group)).contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < group.getSize(); ++r) {
    output[0].push_back(at::empty_like(input[0]));
  }
  group.allgather(output, input)->wait();
  for (auto& t : output[0]) {
    t = t.to(mine.device());
  }
  return output[0];
}

// Runs an in-place collective on `t` (run(list) starts it on a list of one
// tensor), through a copy on the group's device when t is elsewhere.
template <typename Run>
void in_place_collective(at::Tensor& t,
                         c10d::ProcessGroup& group,
                         const Run& run) {
  const auto device = collective_device(group);
  std::vector<at::Tensor> one{t.device() == device ? t : t.to(device)};
  run(one)->wait();
  if (!one[0].is_same(t)) {
    t.copy_(one[0]);
  }
}

// Sums `t` over the ranks, in place.
void allreduce_sum(at::Tensor& t, c10d::ProcessGroup& group) {
  in_place_collective(t, group, [&](std::vector<at::Tensor>& one) {
    return group.allreduce(one);
  });
}

// Rank 0's `t` on every rank, in place.
void broadcast_from_rank0(at::Tensor& t, c10d::ProcessGroup& group) {
  in_place_collective(t, group, [&](std::vector<at::Tensor>& one) {
    return group.broadcast(one);
  });
}

void check_shard(const at::Tensor& t, const char* what, const char* where) {
  TORCH_CHECK(t.defined() && t.dim() >= 1 && t.size(0) > 0,
              where,
              ": this rank's ",
              what,
              " shard is empty; give every rank at least one row");
}

}  // namespace

c10::intrusive_ptr<c10d::ProcessGroup> init_process_group(
    const InitOptions& options) {
  // The backend first: a refused one opens no port.
  const bool nccl = options.backend() == "nccl";
  TORCH_CHECK(nccl || options.backend() == "gloo",
              "normopt::distributed::init_process_group: unknown backend '",
              options.backend(),
              "'; expected 'gloo' or 'nccl'");
#if NORMOPT_HAVE_NCCL
  const auto devices = nccl ? c10::cuda::device_count() : 0;
  TORCH_CHECK(!nccl || devices > 0,
              "normopt::distributed::init_process_group: backend 'nccl' "
              "needs a CUDA device and none is visible; use 'gloo'");
#else
  TORCH_CHECK(!nccl,
              "normopt::distributed::init_process_group: backend 'nccl' "
              "needs normopt built against a CUDA LibTorch with NCCL's "
              "headers (NORMOPT_HAVE_NCCL is 0 in this build); use 'gloo'");
#endif
  const int64_t world = env_int("WORLD_SIZE", 1, 1 << 20);
  const int64_t rank = env_int("RANK", 0, world - 1);
  const std::string addr = env("MASTER_ADDR");
  const int64_t port = env_int("MASTER_PORT", 1, 65535);
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(port);
  // Under torchrun the agent already hosts the store at MASTER_ADDR:
  // MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True): every rank is then a
  // client, as in torch.distributed.
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool use_agent_store =
      agent_store != nullptr && std::string(agent_store) == "True";
  store_options.isServer = !use_agent_store && rank == 0;
  store_options.numWorkers = static_cast<size_t>(world);
  store_options.timeout = options.timeout();
  c10::intrusive_ptr<c10d::Store> store =
      c10::make_intrusive<c10d::TCPStore>(addr, store_options);
  if (use_agent_store) {
    // The agent's store outlives a restart of the workers: each attempt
    // keeps its keys apart, or a restarted rank would find the addresses of
    // the ranks it replaced.
    const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
    store = c10::make_intrusive<c10d::PrefixStore>(
        std::string("/normopt/attempt_") + (attempt ? attempt : "0"), store);
  }
  auto group = c10::make_intrusive<c10d::ProcessGroup>(
      store, static_cast<int>(rank), static_cast<int>(world));
  if (nccl) {
#if NORMOPT_HAVE_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(rank % devices));
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = options.timeout();
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        store, static_cast<int>(rank), static_cast<int>(world), nccl_options);
    group->setBackend(
        c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, backend);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
    return group;
#endif
  }
  auto gloo_options =
      c10d::ProcessGroupGloo::Options::create(options.timeout());
  // Bind the transport to the rendezvous address's interface: a loopback
  // MASTER_ADDR keeps every byte on the loopback device.
  gloo_options->devices.push_back(
      c10d::ProcessGroupGloo::createDeviceForHostname(addr));
  auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
      store, static_cast<int>(rank), static_cast<int>(world), gloo_options);
  group->setBackend(
      c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  return group;
}

data::Table shard(const data::Table& table, int64_t rank, int64_t world) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world,
              "normopt::distributed::shard: rank ",
              rank,
              " is not in [0, ",
              world,
              ")");
  const int64_t n = table.features.size(0);
  const int64_t begin = rank * n / world, end = (rank + 1) * n / world;
  data::Table part = table;
  part.features = table.features.narrow(0, begin, end - begin);
  part.targets = table.targets.narrow(0, begin, end - begin);
  return part;
}

data::Table read_csv_shard(const std::string& path,
                           const data::CsvOptions& options,
                           c10d::ProcessGroup& group) {
  const int64_t rank = group.getRank(), world = group.getSize();
  if (world > 1) {
    const auto gather = [&](std::vector<int64_t> values) {
      std::vector<int64_t> all;
      for (const auto& theirs :
           all_gather(at::tensor(values, at::kLong), group)) {
        const auto* p = theirs.const_data_ptr<int64_t>();
        all.insert(all.end(), p, p + theirs.numel());
      }
      return all;
    };
    if (auto part =
            data::csv::read_csv_range(path, options, rank, world, gather)) {
      return std::move(*part);
    }
  }
  // One rank failed (or world is 1): every rank reads the whole file, so
  // each throws the same error, naming the file and line.
  auto table = data::read_csv(path, options);
  if (world > 1) {
    TORCH_WARN(
        "normopt::distributed::read_csv_shard: ",
        path,
        " could not be split by bytes (a '\"' inside an unquoted field "
        "makes a cut fall inside a quoted field), so every rank read the "
        "whole file and kept its rows. Quote whole fields only (RFC 4180) "
        "to let each rank read only its share.");
  }
  return shard(table, rank, world);
}

void adapt(nn::Normalization& norm,
           const at::Tensor& shard,
           c10d::ProcessGroup& group) {
  check_shard(shard, "feature", "normopt::distributed::adapt");
  at::NoGradGuard no_grad;
  auto [n, mean, m2] = norm->moments_of(shard);
  const auto shape = mean.sizes().vec();
  auto mine = at::cat({n.to(at::kDouble).reshape({1}),
                       mean.reshape({-1}),
                       m2.reshape({-1})})
                  .cpu();
  const int64_t f = mean.numel();
  norm->reset_statistics();
  for (const auto& theirs : all_gather(mine, group)) {
    norm->merge(theirs[0].to(at::kLong),
                theirs.narrow(0, 1, f).reshape(shape),
                theirs.narrow(0, 1 + f, f).reshape(shape));
  }
}

void fit(nn::TargetStandardizer& target,
         const at::Tensor& shard,
         c10d::ProcessGroup& group) {
  check_shard(shard, "target", "normopt::distributed::fit");
  TORCH_CHECK(shard.dim() == 1 || shard.dim() == 2,
              "normopt::distributed::fit: expected targets of shape (N) or "
              "(N, k), got ",
              shard.sizes());
  at::NoGradGuard no_grad;
  auto y = shard.to(at::kDouble);
  auto [n, mean, m2] = ops::moments(y, {0});
  const auto shape = mean.sizes().vec();
  const int64_t k = mean.numel();
  const bool minmax = target->options.method() == nn::TargetScaling::kMinMax;
  at::Tensor a = mean, b = m2;
  if (minmax) {
    a = std::get<0>(at::min(y, 0));
    b = std::get<0>(at::max(y, 0));
  }
  auto mine = at::cat(
      {n.to(at::kDouble).reshape({1}), a.reshape({-1}), b.reshape({-1})});
  auto all = all_gather(mine, group);
  // Merge in rank order, exactly as one process streaming over the shards.
  auto total = all[0][0].clone();
  auto acc_a = all[0].narrow(0, 1, k).clone();
  auto acc_b = all[0].narrow(0, 1 + k, k).clone();
  for (size_t r = 1; r < all.size(); ++r) {
    auto nr = all[r][0];
    auto ar = all[r].narrow(0, 1, k), br = all[r].narrow(0, 1 + k, k);
    if (minmax) {
      acc_a = at::minimum(acc_a, ar);
      acc_b = at::maximum(acc_b, br);
      total = total + nr;
    } else {
      std::tie(total, acc_a, acc_b) =
          ops::merge_moments(total, acc_a, acc_b, nr, ar, br);
    }
  }
  auto count = total.to(at::kLong);
  if (minmax) {
    target->fit_range(count, acc_a.reshape(shape), acc_b.reshape(shape));
  } else {
    target->fit_moments(count, acc_a.reshape(shape), acc_b.reshape(shape));
  }
}

void fit_statistics(nn::StandardizedRegressor& model,
                    const at::Tensor& x_shard,
                    const at::Tensor& y_shard,
                    c10d::ProcessGroup& group) {
  adapt(model->normalization, x_shard, group);
  fit(model->target, y_shard, group);
}

void broadcast_parameters(torch::nn::Module& module,
                          c10d::ProcessGroup& group) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (const auto& p : module.parameters()) {
    tensors.push_back(p);
  }
  for (const auto& b : module.buffers()) {
    tensors.push_back(b);
  }
  for (auto& t : tensors) {
    TORCH_CHECK(t.is_contiguous(),
                "normopt::distributed::broadcast_parameters: a parameter or "
                "buffer is not contiguous");
    broadcast_from_rank0(t, group);
  }
}

int64_t allreduce_gradients(torch::nn::Module& module,
                            int64_t rows,
                            c10d::ProcessGroup& group,
                            int64_t bucket_elements) {
  TORCH_CHECK(rows >= 0 && bucket_elements > 0,
              "normopt::distributed::allreduce_gradients: rows (",
              rows,
              ") must be >= 0 and bucket_elements (",
              bucket_elements,
              ") positive");
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : module.parameters()) {
    if (!p.grad().defined()) {
      p.mutable_grad() = at::zeros_like(p);
    }
    grads.push_back(p.grad());
  }
  // One flat float64 vector: rows·grad of every parameter, then the rows.
  std::vector<at::Tensor> parts;
  for (const auto& g : grads) {
    parts.push_back(g.reshape({-1}).to(at::kDouble) *
                    static_cast<double>(rows));
  }
  // Concatenated on the gradients' device, then all-reduced on the
  // group's (the same device unless, say, a CUDA model runs on Gloo).
  const auto options = grads.empty() ? at::TensorOptions(at::kDouble)
                                     : grads[0].options().dtype(at::kDouble);
  parts.push_back(at::full({1}, static_cast<double>(rows), options));
  auto flat = at::cat(parts);
  flat = flat.to(collective_device(group));
  for (int64_t start = 0; start < flat.numel(); start += bucket_elements) {
    std::vector<at::Tensor> bucket{
        flat.narrow(0, start, std::min(bucket_elements, flat.numel() - start))};
    group.allreduce(bucket)->wait();
  }
  const double total = flat[flat.numel() - 1].item<double>();
  TORCH_CHECK(total > 0,
              "normopt::distributed::allreduce_gradients: no rank had rows in "
              "this step");
  int64_t offset = 0;
  for (auto& g : grads) {
    g.copy_(flat.narrow(0, offset, g.numel()).view(g.sizes()) / total);
    offset += g.numel();
  }
  return static_cast<int64_t>(total);
}

namespace {

// distributed::fit's part of every step and epoch: gradients all-reduced
// before each step, and each epoch's losses made the union's (row-weighted
// over the ranks, field by field as train::kEpochLogFields says) before
// anything else sees them.
class DataParallel final : public train::Callback {
 public:
  explicit DataParallel(c10d::ProcessGroup& group) : group_(group) {}

  void before_step(train::FitState& state, int64_t rows) override {
    allreduce_gradients(*state.model, rows, group_);
  }

  void on_epoch_measured(train::FitState& state,
                         train::EpochLog& log) override {
    const auto& fields = train::kEpochLogFields;
    const auto weight = [&](train::Combine combine) {
      return static_cast<double>(combine == train::Combine::kTrainRows
                                     ? state.train_rows
                                     : state.validation_rows);
    };
    // Each combined field's row-weighted sum, then the two row counts.
    auto sums =
        at::zeros({static_cast<int64_t>(fields.size()) + 2}, at::kDouble);
    auto* v = sums.data_ptr<double>();
    for (size_t f = 0; f < fields.size(); ++f) {
      if (fields[f].combine != train::Combine::kSame &&
          weight(fields[f].combine) > 0) {
        v[f] = log.*fields[f].member * weight(fields[f].combine);
      }
    }
    v[fields.size()] = weight(train::Combine::kTrainRows);
    v[fields.size() + 1] = weight(train::Combine::kValidationRows);
    allreduce_sum(sums, group_);
    for (size_t f = 0; f < fields.size(); ++f) {
      const auto combine = fields[f].combine;
      if (combine == train::Combine::kSame) {
        continue;
      }
      const double rows =
          v[combine == train::Combine::kTrainRows ? fields.size()
                                                  : fields.size() + 1];
      if (rows > 0) {
        log.*fields[f].member = v[f] / rows;
      }
    }
  }

 private:
  c10d::ProcessGroup& group_;
};

}  // namespace

train::History fit(nn::StandardizedRegressor& model,
                   torch::optim::Optimizer& optimizer,
                   const data::Table& shard,
                   train::FitOptions options,
                   c10d::ProcessGroup& group) {
  check_shard(shard.features, "feature", "normopt::distributed::fit");
  // A resumed run loads its statistics and parameters from the checkpoint,
  // the same file on every rank.
  if (options.resume_from().empty()) {
    if (!model->normalization->is_adapted() || !model->target->is_fitted()) {
      fit_statistics(model, shard.features, shard.targets, group);
    }
    broadcast_parameters(*model, group);
  }
  // Every rank must step the same number of times, or the all-reduce of
  // the rank with more steps waits for a partner that never comes. (A
  // negative batch_size passes here as -1 on every rank: train::fit below
  // refuses it with its own message.)
  const int64_t steps = options.batch_size() < 0
                            ? -1
                            : train::batches_per_epoch(shard.features.size(0),
                                                       options.batch_size());
  auto counts = all_gather(at::full({1}, steps, at::kLong), group);
  for (const auto& c : counts) {
    TORCH_CHECK(c.item<int64_t>() == steps,
                "normopt::distributed::fit: ranks would take different "
                "numbers of steps per epoch (",
                steps,
                " here, ",
                c.item<int64_t>(),
                " on another rank); give every rank the same number of rows "
                "or use batch_size 0 (full batch)");
  }
  // Progress and checkpoints come from rank 0 alone; every rank holds the
  // same parameters, optimizer state and (below) History.
  if (group.getRank() != 0) {
    options.progress(train::Progress::kOff);
    options.checkpoint_path("");
  }
  // Prepended, so the caller's callbacks see the union's gradients and
  // losses, as every later callback (early stopping, schedulers,
  // checkpoints) does.
  auto callbacks = options.callbacks();
  callbacks.insert(callbacks.begin(), std::make_shared<DataParallel>(group));
  options.callbacks(std::move(callbacks));
  return train::fit(model, optimizer, shard, options);
}

}  // namespace normopt::distributed
