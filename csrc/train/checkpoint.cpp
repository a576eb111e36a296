#include "checkpoint.h"

#include <normopt/nn/detail/serialize.h>

#include "../util/files.h"
#include "../util/finite.h"
#include "../util/zip_check.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Type.h>
#include <torch/serialize/output-archive.h>

#include <cstring>
#include <iterator>
#include <mutex>
#include <sstream>
#include <type_traits>
#include <typeinfo>

namespace normopt::train::detail {
namespace {

constexpr const char* kRecord = "normopt_fit";
constexpr const char* kFormat = "normopt.fit_checkpoint";
// The record's layout. Version 3 names its History columns in the file
// (history_columns); a change to kEpochLogFields changes them, and a file
// whose columns differ from this build's is refused by name (bump kVersion
// with it: tests/cpp/train/test_checkpoint.cpp pins the pair).
constexpr int64_t kVersion = 3;
// The columns of versions 1 and 2, which did not name them in the file:
// their files read while this build's columns are the same.
constexpr const char* kVersion1And2Columns =
    "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds";
// The History tensor's columns: the epoch, then kEpochLogFields.
constexpr int64_t kLogFields = 1 + static_cast<int64_t>(kEpochLogFields.size());

// "epoch", then kEpochLogFields' names, comma-separated.
std::string history_columns() {
  std::string out = "epoch";
  for (const auto& field : kEpochLogFields) {
    out += std::string(",") + field.name;
  }
  return out;
}

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

// The checkpoint record's entries after format, version and history_columns
// (each read and written through for_each_entry, in this order).
struct Record {
  int64_t epoch = 0;
  bool stopped_early = false;
  // [epochs, kLogFields] float64: the epoch, then kEpochLogFields in order.
  at::Tensor history;
  // Settings a resumed run must share.
  int64_t batch_size = 0;
  bool shuffle = false;
  int64_t seed = 0;  // the uint64 seed's bits
  bool validation = false;
  // Which optimizer, its param groups' shapes and the model's dtype, checked
  // before anything loads.
  std::string optimizer_type, param_layout, dtype;
  at::Tensor optimizer;  // the optimizer's archive, as bytes
  at::Tensor cpu_rng;    // torch's global CPU generator state
};

// Calls f(key, member) for each of the record's entries: the one list that
// save_checkpoint writes and read_checkpoint reads.
template <typename R, typename F>
void for_each_entry(R& r, F&& f) {
  f("epoch", r.epoch);
  f("stopped_early", r.stopped_early);
  f("history", r.history);
  f("batch_size", r.batch_size);
  f("shuffle", r.shuffle);
  f("seed", r.seed);
  f("validation", r.validation);
  f("optimizer_type", r.optimizer_type);
  f("param_layout", r.param_layout);
  f("dtype", r.dtype);
  f("optimizer", r.optimizer);
  f("cpu_rng", r.cpu_rng);
}

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
  if (auto bad = util::first_nonfinite_named(model->named_parameters())) {
    refuse_save("parameter", *bad);
  }
  if (auto bad = util::first_nonfinite_named(model->named_buffers())) {
    refuse_save("statistic", *bad);
  }
}

// An archive's bytes.
std::string bytes_of(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t size) -> size_t {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

// The optimizer's archive as a byte tensor.
at::Tensor optimizer_bytes(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  const std::string bytes = bytes_of(archive);
  auto out = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

void write_entry(torch::serialize::OutputArchive& record,
                 const char* key,
                 const at::Tensor& value) {
  record.write(key, value);
}

template <typename T>
void write_entry(torch::serialize::OutputArchive& record,
                 const char* key,
                 const T& value) {
  record.write(key, c10::IValue(value));
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

// An int64_t, bool or std::string entry: present and of that type.
template <typename T>
void read_entry(torch::serialize::InputArchive& record,
                const std::string& path,
                const char* key,
                T& out) {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, bool> ||
                std::is_same_v<T, std::string>);
  auto v = read_field(record, path, key);
  const bool fits = std::is_same_v<T, int64_t> ? v.isInt()
                    : std::is_same_v<T, bool>  ? v.isBool()
                                               : v.isString();
  if (!fits) {
    const char* kind = std::is_same_v<T, int64_t> ? "an integer"
                       : std::is_same_v<T, bool>  ? "a bool"
                                                  : "a string";
    refuse(path, std::string("its '") + key + "' entry is not " + kind);
  }
  out = v.to<T>();
}

void read_entry(torch::serialize::InputArchive& record,
                const std::string& path,
                const char* key,
                at::Tensor& out) {
  if (!record.try_read(key, out)) {
    refuse(path,
           std::string("its checkpoint record has no '") + key +
               "' tensor: the file is corrupted or was written by another "
               "program");
  }
}

template <typename T>
T read_value(torch::serialize::InputArchive& record,
             const std::string& path,
             const char* key) {
  T value{};
  read_entry(record, path, key, value);
  return value;
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
  r.optimizer = optimizer_bytes(*what.optimizer);
  r.cpu_rng = cpu_rng_state();

  torch::serialize::OutputArchive archive;
  what.model->save(archive);
  torch::serialize::OutputArchive record;
  record.write("format", c10::IValue(std::string(kFormat)));
  record.write("version", c10::IValue(kVersion));
  record.write("history_columns", c10::IValue(history_columns()));
  for_each_entry(r, [&record](const char* key, const auto& value) {
    write_entry(record, key, value);
  });
  archive.write(kRecord, record);
  util::write_atomically(path, bytes_of(archive), "fit: saving a checkpoint");
}

namespace {

// The file's bytes, checked against the zip's CRCs before LibTorch's reader
// sees them (see util::check_zip).
std::string read_intact_bytes(const std::string& path) {
  const util::PathKind kind = util::path_kind(path);
  if (kind != util::PathKind::kFile) {
    refuse(path,
           kind != util::PathKind::kMissing
               ? "it is not a regular file"
               : "no such file; give the checkpoint_path of an earlier run");
  }
  std::string bytes = util::read_file(path, "fit: cannot resume");
  if (auto damage = util::check_zip(bytes)) {
    refuse(path,
           "the file is truncated, corrupted or not a checkpoint (" + *damage +
               ")");
  }
  return bytes;
}

torch::serialize::InputArchive open_archive(const std::string& path,
                                            const std::string& bytes) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size(), at::Device(at::kCPU));
  } catch (const std::exception& e) {
    refuse(path,
           "the file is truncated, corrupted or not a checkpoint (" +
               reason_of(e) + ")");
  }
  return archive;
}

// The "normopt_fit" record, once it says it is one of fit()'s checkpoints.
torch::serialize::InputArchive open_record(
    const std::string& path, torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive record;
  if (!archive.try_read(kRecord, record)) {
    refuse(path,
           "it is not a fit() checkpoint (no 'normopt_fit' record); a model "
           "saved with torch::save is loaded with torch::load instead");
  }
  const auto format = read_value<std::string>(record, path, "format");
  if (format != kFormat) {
    refuse(path, "its format is '" + format + "', expected '" + kFormat + "'");
  }
  return record;
}

// Refuses, by version and History columns, a file of another layout than
// this build's. Version 1 also held a digest of the values, now ignored:
// the CRC check covers every byte of every entry.
void check_layout(const std::string& path,
                  torch::serialize::InputArchive& record) {
  const auto version = read_value<int64_t>(record, path, "version");
  std::string columns = "unknown";
  if (version == 1 || version == 2) {
    columns = kVersion1And2Columns;
  } else if (version >= 3) {
    columns = read_value<std::string>(record, path, "history_columns");
  }
  if (version <= kVersion && columns == history_columns()) {
    return;
  }
  refuse(path,
         "it was written by checkpoint format version " +
             std::to_string(version) + " (history columns " + columns +
             "); this build reads format versions 1 to " +
             std::to_string(kVersion) + " with history columns " +
             history_columns() +
             ": resume it with the normopt that wrote it, or torch::load its "
             "model and start a new run");
}

Record read_entries(const std::string& path,
                    torch::serialize::InputArchive& record) {
  Record r;
  for_each_entry(r, [&](const char* key, auto& value) {
    read_entry(record, path, key, value);
  });
  return r;
}

// The saved model, optimizer and settings against this run's.
void check_against_run(const std::string& path,
                       const Record& r,
                       const nn::StandardizedRegressorImpl& model,
                       const torch::optim::Optimizer& optimizer,
                       const FitOptions& options,
                       bool has_validation) {
  if (r.dtype != model_dtype(model)) {
    refuse(path,
           "it was saved from a " + r.dtype + " model, this one is " +
               model_dtype(model) +
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
}

// The History the record holds, its epochs numbered 1, 2, ... r.epoch.
History read_history(const std::string& path,
                     const Record& r,
                     const FitOptions& options) {
  const auto& table = r.history;
  if (table.scalar_type() != at::kDouble || table.dim() != 2 ||
      table.size(0) != r.epoch || table.size(1) != kLogFields) {
    std::ostringstream what;
    what << "its History has shape " << table.sizes() << " and dtype "
         << table.scalar_type() << ", expected [" << r.epoch << ", "
         << kLogFields << "] float64: the file is corrupted";
    refuse(path, what.str());
  }
  History history;
  history.optimum_mse = options.optimum_mse();
  history.stopped_early = r.stopped_early;
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
    history.epochs.push_back(log);
  }
  return history;
}

at::Tensor read_rng_state(const std::string& path, const Record& r) {
  const auto rng_now = cpu_rng_state();
  if (r.cpu_rng.scalar_type() != rng_now.scalar_type() ||
      !r.cpu_rng.sizes().equals(rng_now.sizes())) {
    refuse(path, "its RNG state has the wrong size: the file is corrupted");
  }
  return r.cpu_rng;
}

// The optimizer's saved archive, its tensors read onto `device`.
torch::serialize::InputArchive read_optimizer_state(const std::string& path,
                                                    const Record& r,
                                                    at::Device device) {
  if (r.optimizer.scalar_type() != at::kByte || r.optimizer.dim() != 1) {
    refuse(path,
           "its optimizer state is not a byte string: the file is "
           "corrupted");
  }
  torch::serialize::InputArchive state;
  try {
    const auto bytes = r.optimizer.contiguous();
    state.load_from(static_cast<const char*>(bytes.const_data_ptr()),
                    static_cast<size_t>(bytes.numel()),
                    device);
  } catch (const std::exception& e) {
    refuse(path, "its optimizer state does not read (" + reason_of(e) + ")");
  }
  return state;
}

// The optimizer's state must load before anything changes: a trial load,
// undone from an in-memory copy of the optimizer's current state (restore
// loads it again after the schedulers' replay).
void trial_load(const std::string& path,
                torch::optim::Optimizer& optimizer,
                torch::serialize::InputArchive& state,
                at::Device device) {
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
    optimizer.load(state);
  } catch (const std::exception& e) {
    put_back();
    refuse(path,
           "its optimizer state does not load into this optimizer (" +
               reason_of(e) + ")");
  }
  put_back();
}

// Last, because it is the step that changes something: all or nothing.
void load_model(const std::string& path,
                nn::StandardizedRegressor& model,
                torch::serialize::InputArchive& archive,
                at::Device device) {
  try {
    model->load(archive);
  } catch (const c10::Error& e) {
    refuse(path, e.what_without_backtrace());
  }
  model->to(device);
}

ResumePoint read_checkpoint_unguarded(const std::string& path,
                                      nn::StandardizedRegressor& model,
                                      torch::optim::Optimizer& optimizer,
                                      const FitOptions& options,
                                      bool has_validation) {
  const std::string bytes = read_intact_bytes(path);
  auto archive = open_archive(path, bytes);
  auto record = open_record(path, archive);
  check_layout(path, record);
  // The model first: a foreign model's error names its tensors. Its saved
  // values are read, not loaded: nothing of the caller's changes until every
  // check has passed.
  try {
    nn::detail::read_checked(*model, archive);
  } catch (const c10::Error& e) {
    refuse(path, e.what_without_backtrace());
  }
  const Record r = read_entries(path, record);
  check_against_run(path, r, *model, optimizer, options, has_validation);
  ResumePoint point;
  point.path = path;
  point.history = read_history(path, r, options);
  point.cpu_rng = read_rng_state(path, r);
  // Checkpoints hold CPU tensors and resume on any device: the optimizer
  // state is read straight onto the parameters' device, and the model,
  // whose parameters LibTorch's reader swaps for the file's CPU tensors, is
  // moved back (Module::to keeps each parameter's identity, so the
  // optimizer's references stay valid).
  const auto parameters = model->parameters();
  const auto device =
      parameters.empty() ? at::Device(at::kCPU) : parameters.front().device();
  point.optimizer = read_optimizer_state(path, r, device);
  trial_load(path, optimizer, point.optimizer, device);
  load_model(path, model, archive, device);
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
