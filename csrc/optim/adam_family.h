#pragma once
// Internal: what Adam and AdamW share — option (de)serialization and the
// step, which gathers each param group's tensors and calls the fused op once.

#include <normopt/ops/optim_step.h>
#include <normopt/optim/adam.h>

#include "../util/finite.h"
#include "op_options.h"
#include "step_lists.h"

#include <ATen/ATen.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <vector>

namespace normopt::optim::detail {

template <typename Options>
void check_adam_options(const Options& o, const char* name) {
  TORCH_CHECK(o.lr() >= 0, name, ": invalid learning rate ", o.lr());
  TORCH_CHECK(
      o.effective_eps() >= 0, name, ": invalid eps ", o.effective_eps());
  const auto [b1, b2] = o.betas();
  TORCH_CHECK(b1 >= 0 && b1 < 1,
              name,
              ": invalid beta1 ",
              b1,
              "; it must be in [0, 1)");
  TORCH_CHECK(b2 >= 0 && b2 < 1,
              name,
              ": invalid beta2 ",
              b2,
              "; it must be in [0, 1)");
  TORCH_CHECK(
      o.weight_decay() >= 0, name, ": invalid weight_decay ", o.weight_decay());
  TORCH_CHECK(!(o.capturable() && o.skip_nonfinite()),
              name,
              ": capturable and skip_nonfinite cannot be combined: "
              "skip_nonfinite reads the gradients on the host to decide "
              "each step, which a captured CUDA graph cannot do; turn one "
              "off");
}

template <typename Options>
void write_adam_options(const Options& o,
                        torch::serialize::OutputArchive& archive) {
  archive.write("lr", c10::IValue(o.lr()));
  archive.write("betas", c10::IValue(o.betas()));
  archive.write("eps", c10::IValue(o.eps()));
  archive.write("weight_decay", c10::IValue(o.weight_decay()));
  archive.write("amsgrad", c10::IValue(o.amsgrad()));
  archive.write("maximize", c10::IValue(o.maximize()));
  archive.write("epsilon_mode",
                c10::IValue(static_cast<int64_t>(o.epsilon_mode())));
  archive.write("skip_nonfinite", c10::IValue(o.skip_nonfinite()));
  archive.write("capturable", c10::IValue(o.capturable()));
}

template <typename Options>
void read_adam_options(Options& o, torch::serialize::InputArchive& archive) {
  c10::IValue v;
  archive.read("lr", v);
  o.lr(v.toDouble());
  archive.read("betas", v);
  o.betas(v.to<typename Options::betas_t>());
  archive.read("eps", v);
  o.eps(v.toOptional<double>());
  archive.read("weight_decay", v);
  o.weight_decay(v.toDouble());
  archive.read("amsgrad", v);
  o.amsgrad(v.toBool());
  archive.read("maximize", v);
  o.maximize(v.toBool());
  archive.read("epsilon_mode", v);
  const int64_t mode = v.toInt();
  TORCH_CHECK(mode == static_cast<int64_t>(EpsilonMode::kPyTorch) ||
                  mode == static_cast<int64_t>(EpsilonMode::kKeras),
              "normopt Adam/AdamW options: the saved epsilon_mode is ",
              mode,
              "; expected 0 (PyTorch) or 1 (Keras): the saved state is "
              "corrupted or from another program");
  o.epsilon_mode(static_cast<EpsilonMode>(mode));
  archive.read("skip_nonfinite", v);
  o.skip_nonfinite(v.toBool());
  // Absent in files from before capturable existed.
  o.capturable(archive.try_read("capturable", v) && v.toBool());
}

/// LibTorch's add_param_group merges a group's options with the defaults
/// only for its own optimizer types and otherwise replaces them with the
/// defaults; this puts each group's own options back (fields taken as given).
inline void keep_group_options(
    std::vector<torch::optim::OptimizerParamGroup>& groups,
    const std::vector<torch::optim::OptimizerParamGroup>& given) {
  for (size_t i = 0; i < given.size() && i < groups.size(); ++i) {
    if (given[i].has_options()) {
      groups[i].set_options(given[i].options().clone());
    }
  }
}

/// The count of skipped steps is part of an optimizer's saved state (so a
/// resumed run reports the same total): written beside LibTorch's
/// param_groups and state, read back validated (absent, in files from
/// before it was saved: 0).
inline void write_skipped_steps(torch::serialize::OutputArchive& archive,
                                int64_t skipped) {
  archive.write("skipped_steps", c10::IValue(skipped));
}
inline int64_t read_skipped_steps(torch::serialize::InputArchive& archive,
                                  const char* name) {
  c10::IValue v;
  if (!archive.try_read("skipped_steps", v)) {
    return 0;
  }
  TORCH_CHECK(v.isInt() && v.toInt() >= 0,
              name,
              ": the saved skipped_steps is ",
              v,
              "; expected a count >= 0: the saved state is corrupted or from "
              "another program");
  return v.toInt();
}

/// Whether every defined gradient of every group is finite.
inline bool all_grads_finite(
    const std::vector<torch::optim::OptimizerParamGroup>& groups) {
  std::vector<at::Tensor> grads;
  for (const auto& group : groups) {
    for (const auto& p : group.params()) {
      if (p.grad().defined()) {
        grads.push_back(p.grad());
      }
    }
  }
  return !util::first_nonfinite_tensor(grads);
}

/// Puts the state's step count where `capturable` wants it: in a float64
/// tensor on the parameter's device, or in the host int (a state created or
/// saved under the other setting, or a tensor loaded onto another device).
/// Changes nothing once converted, so a captured step does no host work
/// here.
inline void place_step_count(AdamParamState& s,
                             const at::Tensor& p,
                             bool capturable) {
  const auto& t = s.step_tensor();
  if (capturable) {
    if (!t.defined()) {
      s.step_tensor(at::full(
          {}, static_cast<double>(s.step()), p.options().dtype(at::kDouble)));
    } else if (t.device() != p.device() || t.scalar_type() != at::kDouble ||
               t.dim() != 0) {
      s.step_tensor(t.reshape({}).to(p.device(), at::kDouble));
    }
  } else if (t.defined()) {
    s.step(s.step_count());
    s.step_tensor(at::Tensor());
  }
}

/// One Adam/AdamW step over all param groups. Returns false when the step
/// was skipped for non-finite gradients.
template <typename Options>
bool adam_family_step(
    const char* name,
    std::vector<torch::optim::OptimizerParamGroup>& groups,
    ska::flat_hash_map<void*,
                       std::unique_ptr<torch::optim::OptimizerParamState>>&
        state,
    const Options& defaults,
    bool decoupled) {
  at::NoGradGuard no_grad;
  if (defaults.skip_nonfinite() && !all_grads_finite(groups)) {
    return false;
  }
  StepLists<6> lists;
  enum : size_t {
    kParams,
    kGrads,
    kExpAvgs,
    kExpAvgSqs,
    kMaxSqs,
    kStepTensors,  // capturable groups
  };
  c10::SmallVector<int64_t, 8> steps;  // the non-capturable groups
  for (auto& group : groups) {
    const auto& o = static_cast<const Options&>(group.options());
    lists.clear();
    steps.clear();
    auto& params = group.params();  // an out-of-line call: once a group
    for (size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i];
      const auto& grad = grad_of(p);
      if (!has_dense_grad(name, i, grad)) {
        continue;
      }
      auto& slot = state[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto s = std::make_unique<AdamParamState>();
        s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        if (o.amsgrad()) {
          s->max_exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
        }
        slot = std::move(s);
      }
      auto& s = static_cast<AdamParamState&>(*slot);
      if (o.amsgrad() && !s.max_exp_avg_sq().defined()) {
        // amsgrad switched on mid-run: start the max from the current v.
        s.max_exp_avg_sq(s.exp_avg_sq().clone());
      }
      place_step_count(s, p, o.capturable());
      if (o.capturable()) {
        lists.add(kStepTensors, s.step_tensor());  // the op advances it
      } else {
        s.step(s.step() + 1);
        steps.push_back(s.step());
      }
      lists.add(kParams, p);
      add_grad(lists, kGrads, p, grad);
      lists.add(kExpAvgs, s.exp_avg());
      lists.add(kExpAvgSqs, s.exp_avg_sq());
      if (o.amsgrad()) {
        lists.add(kMaxSqs, s.max_exp_avg_sq());
      }
    }
    if (lists[kParams].empty()) {
      continue;
    }
    const auto so = adam_step_options(o, decoupled);
    if (o.capturable()) {
      ops::adam_step_capturable_(lists[kParams],
                                 lists[kGrads],
                                 lists[kExpAvgs],
                                 lists[kExpAvgSqs],
                                 lists[kMaxSqs],
                                 lists[kStepTensors],
                                 so);
    } else {
      ops::adam_step_(lists[kParams],
                      lists[kGrads],
                      lists[kExpAvgs],
                      lists[kExpAvgSqs],
                      lists[kMaxSqs],
                      steps,
                      so);
    }
  }
  return true;
}

}  // namespace normopt::optim::detail
