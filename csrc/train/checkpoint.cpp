#include "checkpoint.h"

#include "../nn/checks.h"
#include "../nn/serialize.h"
#include "../util/files.h"
#include "../util/zip_check.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Type.h>
#include <torch/serialize/output-archive.h>

#include <cstring>
#include <iterator>
#include <mutex>
#include <sstream>
#include <typeinfo>

namespace normopt::train::detail {
namespace {

constexpr const char* kRecord = "normopt_fit";
constexpr const char* kFormat = "normopt.fit_checkpoint";
constexpr int64_t kVersion = 2;
// The History tensor's columns: the epoch, then kEpochLogFields.
constexpr int64_t kLogFields = 1 + static_cast<int64_t>(kEpochLogFields.size());

std::string optimizer_type(const torch::optim::Optimizer& optimizer) {
  return c10::demangle(typeid(optimizer).name());
}

// The shapes of the optimizer's parameters, group by group, e.g.
// "group 0: [1, 2] [1]": the layout its saved state is indexed by.
std::string param_layout(const torch::optim::Optimizer& optimizer) {
  std::ostringstream out;
  const auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    out << (g == 0 ? "" : "; ") << "group " << g << ":";
    for (const auto& p : groups[g].params()) {
      out << " " << p.sizes();
    }
  }
  return out.str();
}

at::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

at::Tensor history_tensor(const History& history) {
  const auto rows = static_cast<int64_t>(history.epochs.size());
  auto out = at::empty({rows, kLogFields}, at::kDouble);
  auto* v = out.data_ptr<double>();
  for (const auto& e : history.epochs) {
    *v++ = static_cast<double>(e.epoch);
    for (const auto& field : kEpochLogFields) {
      *v++ = e.*field.member;
    }
  }
  return out;
}

// The checkpoint record's values besides the model's tensors.
struct Record {
  int64_t epoch = 0;
  bool stopped_early = false;
  at::Tensor history;
  int64_t batch_size = 0;
  bool shuffle = false;
  int64_t seed = 0;
  bool validation = false;
  std::string optimizer_type, param_layout, dtype;
  at::Tensor optimizer;  // the optimizer's archive, as bytes
  at::Tensor cpu_rng;
};

std::string model_dtype(const nn::StandardizedRegressorImpl& model) {
  const auto params = model.parameters();
  return params.empty() ? "none" : c10::toString(params[0].scalar_type());
}

// Refuses to save a model holding NaN or Inf, naming the first such tensor.
void check_finite(const nn::StandardizedRegressor& model,
                  const std::string& path,
                  int64_t epoch) {
  auto refuse_save = [&](const char* kind, const auto& bad) {
    TORCH_CHECK(false,
                "fit: not saving the checkpoint of epoch ",
                epoch,
                " to '",
                path,
                "': ",
                kind,
                " '",
                bad.first,
                "' element ",
                at::IntArrayRef(bad.second),
                " is NaN or Inf; the previous checkpoint was left as it "
                "was. Lower the learning rate or standardize the targets");
  };
  if (auto bad = nn::detail::first_nonfinite_named(model->named_parameters())) {
    refuse_save("parameter", *bad);
  }
  if (auto bad = nn::detail::first_nonfinite_named(model->named_buffers())) {
    refuse_save("statistic", *bad);
  }
}

// An exception's message without c10's backtrace. TorchScript's
// deserializer throws its own types on damaged archives.
std::string reason_of(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return error->what_without_backtrace();
  }
  return e.what();
}

// "fit: cannot resume from '<path>': <what>".
[[noreturn]] void refuse(const std::string& path, const std::string& what) {
  TORCH_CHECK(false, "fit: cannot resume from '", path, "': ", what);
}

c10::IValue read_field(torch::serialize::InputArchive& record,
                       const std::string& path,
                       const char* key) {
  c10::IValue value;
  if (!record.try_read(key, value)) {
    refuse(path,
           std::string("its checkpoint record has no '") + key +
               "' entry: the file is corrupted or was written by another "
               "program");
  }
  return value;
}

int64_t read_int(torch::serialize::InputArchive& record,
                 const std::string& path,
                 const char* key) {
  auto v = read_field(record, path, key);
  if (!v.isInt()) {
    refuse(path, std::string("its '") + key + "' entry is not an integer");
  }
  return v.toInt();
}

bool read_bool(torch::serialize::InputArchive& record,
               const std::string& path,
               const char* key) {
  auto v = read_field(record, path, key);
  if (!v.isBool()) {
    refuse(path, std::string("its '") + key + "' entry is not a bool");
  }
  return v.toBool();
}

std::string read_string(torch::serialize::InputArchive& record,
                        const std::string& path,
                        const char* key) {
  auto v = read_field(record, path, key);
  if (!v.isString()) {
    refuse(path, std::string("its '") + key + "' entry is not a string");
  }
  return v.toStringRef();
}

at::Tensor read_tensor(torch::serialize::InputArchive& record,
                       const std::string& path,
                       const char* key) {
  at::Tensor t;
  if (!record.try_read(key, t)) {
    refuse(path,
           std::string("its checkpoint record has no '") + key +
               "' tensor: the file is corrupted or was written by another "
               "program");
  }
  return t;
}

// The saved value of a setting the resumed run must share.
template <typename T>
void expect_same(const std::string& path,
                 const char* name,
                 const T& saved,
                 const T& now) {
  if (saved != now) {
    std::ostringstream what;
    what << std::boolalpha << "it was saved by a run with " << name << " "
         << saved << ", this run has " << now
         << "; resume with the same settings (to train the saved model "
            "differently, torch::load it and start a new run)";
    refuse(path, what.str());
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointContent& what) {
  const auto& history = *what.history;
  const int64_t epoch =
      history.epochs.empty() ? 0 : history.epochs.back().epoch;
  check_finite(what.model, path, epoch);

  Record r;
  r.epoch = epoch;
  r.stopped_early = history.stopped_early;
  r.history = history_tensor(history);
  r.batch_size = what.options->batch_size();
  r.shuffle = what.options->shuffle();
  // uint64 seeds round-trip through int64 bit for bit.
  r.seed = static_cast<int64_t>(what.options->seed());
  r.validation = what.has_validation;
  r.optimizer_type = optimizer_type(*what.optimizer);
  r.param_layout = param_layout(*what.optimizer);
  r.dtype = model_dtype(*what.model);
  {
    torch::serialize::OutputArchive optimizer;
    what.optimizer->save(optimizer);
    std::string bytes;
    optimizer.save_to([&bytes](const void* data, size_t size) -> size_t {
      bytes.append(static_cast<const char*>(data), size);
      return size;
    });
    r.optimizer = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
    std::memcpy(r.optimizer.data_ptr(), bytes.data(), bytes.size());
  }
  r.cpu_rng = cpu_rng_state();

  torch::serialize::OutputArchive archive;
  what.model->save(archive);
  torch::serialize::OutputArchive record;
  record.write("format", c10::IValue(std::string(kFormat)));
  record.write("version", c10::IValue(kVersion));
  record.write("epoch", c10::IValue(r.epoch));
  record.write("stopped_early", c10::IValue(r.stopped_early));
  record.write("history", r.history);
  record.write("batch_size", c10::IValue(r.batch_size));
  record.write("shuffle", c10::IValue(r.shuffle));
  record.write("seed", c10::IValue(r.seed));
  record.write("validation", c10::IValue(r.validation));
  record.write("optimizer_type", c10::IValue(r.optimizer_type));
  record.write("param_layout", c10::IValue(r.param_layout));
  record.write("dtype", c10::IValue(r.dtype));
  record.write("optimizer", r.optimizer);
  record.write("cpu_rng", r.cpu_rng);
  archive.write(kRecord, record);

  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t size) -> size_t {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  util::write_atomically(path, bytes, "fit: saving a checkpoint");
}

namespace {

ResumePoint read_checkpoint_unguarded(const std::string& path,
                                      nn::StandardizedRegressor& model,
                                      torch::optim::Optimizer& optimizer,
                                      const FitOptions& options,
                                      bool has_validation) {
  const util::PathKind kind = util::path_kind(path);
  if (kind != util::PathKind::kFile) {
    refuse(path,
           kind != util::PathKind::kMissing
               ? "it is not a regular file"
               : "no such file; give the checkpoint_path of an earlier run");
  }
  // Read whole and checked against the zip's CRCs before LibTorch's reader
  // sees it (see util::check_zip).
  const std::string bytes = util::read_file(path, "fit: cannot resume");
  if (auto damage = util::check_zip(bytes)) {
    refuse(path,
           "the file is truncated, corrupted or not a checkpoint (" + *damage +
               ")");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size(), at::Device(at::kCPU));
  } catch (const std::exception& e) {
    refuse(path,
           "the file is truncated, corrupted or not a checkpoint (" +
               reason_of(e) + ")");
  }
  torch::serialize::InputArchive record;
  if (!archive.try_read(kRecord, record)) {
    refuse(path,
           "it is not a fit() checkpoint (no 'normopt_fit' record); a model "
           "saved with torch::save is loaded with torch::load instead");
  }
  const auto format = read_string(record, path, "format");
  if (format != kFormat) {
    refuse(path, "its format is '" + format + "', expected '" + kFormat + "'");
  }
  const auto version = read_int(record, path, "version");
  // Version 1 also held a digest of the values, now ignored: the CRC
  // check above covers every byte of every entry.
  if (version != kVersion && version != 1) {
    refuse(path,
           "it has format version " + std::to_string(version) +
               "; this normopt reads versions 1 to " +
               std::to_string(kVersion));
  }

  // The model first: a foreign model's error names its tensors. Its saved
  // values are read, not loaded: nothing of the caller's changes until every
  // check has passed.
  try {
    nn::detail::read_checked(*model, archive);
  } catch (const c10::Error& e) {
    refuse(path, e.what_without_backtrace());
  }
  // Then the whole record, checked field by field below.
  Record r;
  r.epoch = read_int(record, path, "epoch");
  r.stopped_early = read_bool(record, path, "stopped_early");
  r.history = read_tensor(record, path, "history");
  r.batch_size = read_int(record, path, "batch_size");
  r.shuffle = read_bool(record, path, "shuffle");
  r.seed = read_int(record, path, "seed");
  r.validation = read_bool(record, path, "validation");
  r.optimizer_type = read_string(record, path, "optimizer_type");
  r.param_layout = read_string(record, path, "param_layout");
  r.dtype = read_string(record, path, "dtype");
  r.optimizer = read_tensor(record, path, "optimizer");
  r.cpu_rng = read_tensor(record, path, "cpu_rng");

  if (r.dtype != model_dtype(*model)) {
    refuse(path,
           "it was saved from a " + r.dtype + " model, this one is " +
               model_dtype(*model) +
               "; convert the model (model->to(...)) before resuming");
  }
  if (r.optimizer_type != optimizer_type(optimizer)) {
    refuse(path,
           "it holds the state of a " + r.optimizer_type +
               " but this run uses a " + optimizer_type(optimizer) +
               "; build the same optimizer type as the saved run");
  }
  if (r.param_layout != param_layout(optimizer)) {
    refuse(path,
           "its optimizer state is for parameters shaped \"" + r.param_layout +
               "\" but this run's optimizer holds \"" +
               param_layout(optimizer) +
               "\"; build the optimizer on the same model and param groups");
  }
  expect_same(path, "batch_size", r.batch_size, options.batch_size());
  expect_same(path, "shuffle", r.shuffle, options.shuffle());
  expect_same(path, "seed", static_cast<uint64_t>(r.seed), options.seed());
  expect_same(path, "validation data", r.validation, has_validation);
  if (r.epoch < 1) {
    refuse(path, "its epoch count " + std::to_string(r.epoch) + " is invalid");
  }
  if (r.epoch > options.epochs()) {
    refuse(path,
           "it already holds " + std::to_string(r.epoch) +
               " epochs, more than this run's epochs = " +
               std::to_string(options.epochs()) + "; ask for at least " +
               std::to_string(r.epoch));
  }
  const auto& table = r.history;
  if (table.scalar_type() != at::kDouble || table.dim() != 2 ||
      table.size(0) != r.epoch || table.size(1) != kLogFields) {
    std::ostringstream what;
    what << "its History has shape " << table.sizes() << " and dtype "
         << table.scalar_type() << ", expected [" << r.epoch << ", "
         << kLogFields << "] float64: the file is corrupted";
    refuse(path, what.str());
  }
  ResumePoint point;
  point.path = path;
  point.history.optimum_mse = options.optimum_mse();
  point.history.stopped_early = r.stopped_early;
  const auto values = table.contiguous();
  const double* v = values.const_data_ptr<double>();
  for (int64_t e = 0; e < r.epoch; ++e, v += kLogFields) {
    // Compared as a double first: casting a NaN or an out-of-range value
    // to int64 is undefined.
    if (!(v[0] == static_cast<double>(e + 1))) {
      std::ostringstream saved;
      saved << v[0];
      refuse(path,
             "its History lists epoch " + saved.str() + " in place of " +
                 std::to_string(e + 1) + ": the file is corrupted");
    }
    EpochLog log;
    log.epoch = e + 1;
    for (size_t f = 0; f < kEpochLogFields.size(); ++f) {
      log.*kEpochLogFields[f].member = v[1 + f];
    }
    point.history.epochs.push_back(log);
  }
  const auto rng_now = cpu_rng_state();
  if (r.cpu_rng.scalar_type() != rng_now.scalar_type() ||
      !r.cpu_rng.sizes().equals(rng_now.sizes())) {
    refuse(path, "its RNG state has the wrong size: the file is corrupted");
  }
  point.cpu_rng = r.cpu_rng;
  if (r.optimizer.scalar_type() != at::kByte || r.optimizer.dim() != 1) {
    refuse(path,
           "its optimizer state is not a byte string: the file is "
           "corrupted");
  }
  // Checkpoints hold CPU tensors and resume on any device: the optimizer
  // state is read straight onto the parameters' device, and the model,
  // whose parameters LibTorch's reader swaps for the file's CPU tensors, is
  // moved back below (Module::to keeps each parameter's identity, so the
  // optimizer's references stay valid).
  const auto parameters = model->parameters();
  const auto device =
      parameters.empty() ? at::Device(at::kCPU) : parameters.front().device();
  try {
    const auto bytes = r.optimizer.contiguous();
    point.optimizer.load_from(static_cast<const char*>(bytes.const_data_ptr()),
                              static_cast<size_t>(bytes.numel()),
                              device);
  } catch (const std::exception& e) {
    refuse(path, "its optimizer state does not read (" + reason_of(e) + ")");
  }
  // The optimizer's state must load before anything changes: a trial load,
  // undone from an in-memory copy of the optimizer's current state (restore
  // loads it again after the schedulers' replay).
  std::string current;
  {
    torch::serialize::OutputArchive out;
    optimizer.save(out);
    std::ostringstream stream;
    out.save_to(stream);
    current = std::move(stream).str();
  }
  // LibTorch's Optimizer::load adds the saved states to the ones it holds,
  // so the trial's are dropped first.
  const auto put_back = [&] {
    torch::serialize::InputArchive in;
    in.load_from(current.data(), current.size(), device);
    optimizer.state().clear();
    optimizer.load(in);
  };
  try {
    optimizer.load(point.optimizer);
  } catch (const std::exception& e) {
    put_back();
    refuse(path,
           "its optimizer state does not load into this optimizer (" +
               reason_of(e) + ")");
  }
  put_back();
  // Last, because it is the step that changes something: all or nothing.
  try {
    model->load(archive);
  } catch (const c10::Error& e) {
    refuse(path, e.what_without_backtrace());
  }
  model->to(device);
  return point;
}

}  // namespace

ResumePoint read_checkpoint(const std::string& path,
                            nn::StandardizedRegressor& model,
                            torch::optim::Optimizer& optimizer,
                            const FitOptions& options,
                            bool has_validation) {
  try {
    return read_checkpoint_unguarded(
        path, model, optimizer, options, has_validation);
  } catch (const c10::Error&) {
    throw;
  } catch (const std::exception& e) {
    // A damaged archive can fail inside TorchScript's deserializer, which
    // throws its own exception types.
    refuse(path,
           "the file is corrupted or not a checkpoint (" + reason_of(e) + ")");
  }
}

void restore(ResumePoint& point, torch::optim::Optimizer& optimizer) {
  try {
    optimizer.load(point.optimizer);
  } catch (const std::exception& e) {
    refuse(point.path,
           "its optimizer state does not load (" + reason_of(e) +
               "); the file is corrupted");
  }
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(point.cpu_rng);
}

}  // namespace normopt::train::detail
