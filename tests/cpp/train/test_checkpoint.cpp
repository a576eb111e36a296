// fit()'s checkpoints: a crashed run resumed from its last checkpoint equals
// the run that never stopped, bit for bit; saves are atomic; foreign,
// truncated and corrupted files are refused without touching anything; and
// non-finite values never reach a checkpoint.
#include "fixtures.h"

#include <normopt/normopt.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/resource.h>
#endif

using namespace normopt::test::train;
using normopt::test::files_in;

namespace {

// Bitwise equality of tensors (NaN == NaN): torch::equal on the raw bytes.
bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) {
    return false;
  }
  auto x = a.contiguous(), y = b.contiguous();
  // Empty tensors (statistics not adapted yet) have no data pointer.
  return x.nbytes() == 0 ||
         std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

void expect_bit_equal(const std::vector<torch::Tensor>& a,
                      const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(bit_equal(a[i], b[i])) << "tensor " << i << " differs:\n"
                                       << a[i] << "\nvs\n"
                                       << b[i];
  }
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof(double)) == 0;
}

// Every field bit for bit, except wall_seconds (a clock reading).
void expect_same_history(const History& a, const History& b) {
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  EXPECT_EQ(a.stopped_early, b.stopped_early);
  for (size_t i = 0; i < a.epochs.size(); ++i) {
    const auto &x = a.epochs[i], &y = b.epochs[i];
    EXPECT_EQ(x.epoch, y.epoch);
    EXPECT_TRUE(same_bits(x.train_loss, y.train_loss))
        << "epoch " << x.epoch << ": " << x.train_loss << " vs "
        << y.train_loss;
    EXPECT_TRUE(same_bits(x.train_mse, y.train_mse)) << "epoch " << x.epoch;
    EXPECT_TRUE(same_bits(x.val_loss, y.val_loss)) << "epoch " << x.epoch;
    EXPECT_TRUE(same_bits(x.val_mse, y.val_mse)) << "epoch " << x.epoch;
    EXPECT_TRUE(same_bits(x.lr, y.lr))
        << "epoch " << x.epoch << ": " << x.lr << " vs " << y.lr;
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The epoch a checkpoint holds, read straight from its archive.
int64_t saved_epoch(const std::string& path) {
  torch::serialize::InputArchive archive, record;
  archive.load_from(path);
  EXPECT_TRUE(archive.try_read("normopt_fit", record));
  c10::IValue epoch;
  record.read("epoch", epoch);
  return epoch.toInt();
}

struct CrashAt : std::runtime_error {
  CrashAt() : std::runtime_error("simulated crash") {}
};

// One training setup, built afresh for each run the way a restarted program
// would build it.
struct Setup {
  const char* name;
  std::function<StandardizedRegressor()> model;
  std::function<std::unique_ptr<torch::optim::Optimizer>(
      StandardizedRegressor&)>
      optimizer;
  // Options, with schedulers built on the optimizer.
  std::function<FitOptions(torch::optim::Optimizer&)> options;
  bool validation = false;
};

struct Outcome {
  History history;
  std::vector<torch::Tensor> state;
};

const Table& train_table() {
  static const Table t = normopt::data::synthetic_income(120, 3);
  return t;
}

const Table& validation_table() {
  static const Table t = normopt::data::synthetic_income(40, 4);
  return t;
}

// `options` with the validation table when `validation`.
FitOptions with_validation(bool validation, FitOptions options) {
  if (validation) {
    options.validation(validation_table());
  }
  return options;
}

// A StandardizedRegressor(LinearRegressor) over `table`'s features trained
// by Adam (lr 1e-2) with `options`: the small run most tests here save,
// resume or refuse. The caller seeds torch.
struct SmallRun {
  History history;
  StandardizedRegressor model;
};

SmallRun fit_small(const FitOptions& options,
                   const Table& table = train_table()) {
  auto model = StandardizedRegressor(LinearRegressor(table.features.size(1)));
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto history = normopt::train::fit(model, adam, table, options);
  return {history, model};
}

// A run of `s`: its model and optimizer built afresh after seeding torch
// with `seed`, trained with s's options as `edit` changes them.
Outcome run_setup(
    const Setup& s,
    uint64_t seed,
    const std::function<FitOptions(FitOptions)>& edit = [](FitOptions o) {
      return o;
    }) {
  torch::manual_seed(seed);
  auto model = s.model();
  auto optimizer = s.optimizer(model);
  auto history = normopt::train::fit(
      model,
      *optimizer,
      train_table(),
      with_validation(s.validation, edit(s.options(*optimizer))));
  return {history, snapshot(*model)};
}

Outcome run_uninterrupted(const Setup& s) {
  return run_setup(s, 0);
}

// Trains with a checkpoint every `every` epochs, "crashes" at the end of
// epoch `crash_at` (before that epoch's checkpoint), then builds everything
// afresh, from another seed, and resumes from the checkpoint.
Outcome run_crashed_and_resumed(const Setup& s,
                                const std::string& path,
                                int64_t crash_at,
                                int64_t every = 1) {
  EXPECT_THROW(
      run_setup(
          s,
          0,
          [&](FitOptions o) {
            return o.checkpoint_path(path).checkpoint_every(every).callbacks(
                {normopt::train::on_epoch_end([crash_at](const auto& log) {
                  if (log.epoch == crash_at) {
                    throw CrashAt();
                  }
                })});
          }),
      CrashAt);
  // A restarted program: other initial weights.
  return run_setup(s, 12345, [&](FitOptions o) {
    return o.checkpoint_path(path).resume_from(path);
  });
}

Setup adam_step_lr() {
  return {"normopt Adam + StepLR, minibatches, validation",
          [] { return StandardizedRegressor(LinearRegressor(2)); },
          [](StandardizedRegressor& m) {
            return std::make_unique<normopt::optim::Adam>(
                m->parameters(), normopt::optim::AdamOptions(3e-2));
          },
          [](torch::optim::Optimizer& o) {
            return quiet().epochs(10).batch_size(16).seed(5).scheduler(
                std::make_shared<torch::optim::StepLR>(o, 3, 0.5));
          },
          /*validation=*/true};
}

Setup sgd_plateau_early_stopping() {
  return {"normopt SGD nesterov + ReduceLROnPlateau + early stopping",
          [] { return StandardizedRegressor(LinearRegressor(2)); },
          [](StandardizedRegressor& m) {
            return std::make_unique<normopt::optim::SGD>(
                m->parameters(),
                normopt::optim::SGDOptions(0.01).momentum(0.9).nesterov(true));
          },
          [](torch::optim::Optimizer& o) {
            using Plateau = torch::optim::ReduceLROnPlateauScheduler;
            return quiet()
                .epochs(30)
                .batch_size(8)
                .early_stopping_patience(5)
                .early_stopping_min_delta(1e-4)
                .plateau(std::make_shared<Plateau>(
                    o, Plateau::SchedulerMode::min, 0.5f, 1));
          }};
}

// A small MLP with dropout: Linear(2, 16) -> tanh -> dropout(0.3) -> Linear.
struct MlpImpl : torch::nn::Module {
  torch::nn::Linear hidden{nullptr}, out{nullptr};
  torch::nn::Dropout dropout{nullptr};
  MlpImpl() {
    hidden = register_module("hidden", torch::nn::Linear(2, 16));
    dropout = register_module("dropout", torch::nn::Dropout(0.3));
    out = register_module("out", torch::nn::Linear(16, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return out(dropout(torch::tanh(hidden(x))));
  }
};
TORCH_MODULE(Mlp);

// LibTorch's own optimizer and a regressor with dropout, which draws from
// torch's global RNG: the checkpoint's RNG state is what makes it exact.
Setup libtorch_adamw_dropout_mlp() {
  return {"torch::optim::AdamW, MLP with dropout",
          [] { return StandardizedRegressor(Mlp()); },
          [](StandardizedRegressor& m) {
            return std::make_unique<torch::optim::AdamW>(
                m->parameters(), torch::optim::AdamWOptions(1e-2));
          },
          [](torch::optim::Optimizer&) {
            return quiet().epochs(8).batch_size(32).seed(9);
          }};
}

}  // namespace

// ---- Resume equals the uninterrupted run ------------------------------------

TEST(Checkpoint, CrashAndResume_BitIdenticalToUninterruptedRun) {
  for (const auto& setup : {adam_step_lr(),
                            sgd_plateau_early_stopping(),
                            libtorch_adamw_dropout_mlp()}) {
    SCOPED_TRACE(setup.name);
    TempDir dir;
    const auto whole = run_uninterrupted(setup);
    const auto resumed =
        run_crashed_and_resumed(setup, dir.file("run.pt"), /*crash_at=*/7);
    expect_same_history(whole.history, resumed.history);
    expect_bit_equal(whole.state, resumed.state);
  }
}

TEST(Checkpoint, EarlyStoppingAndPlateau_ActuallyActInTheResumedPart) {
  // Guards the previous test against passing vacuously: the SGD setup's
  // learning rate is cut after the crash point and the run stops early.
  const auto whole = run_uninterrupted(sgd_plateau_early_stopping());
  EXPECT_TRUE(whole.history.stopped_early);
  EXPECT_GT(whole.history.epochs.size(), 6u);
  EXPECT_LT(whole.history.epochs.back().lr, whole.history.epochs[5].lr);
  EXPECT_LT(whole.history.epochs.size(), 30u);
}

TEST(Checkpoint, ResumeAfterSparseCheckpoints_RedoesTheLostEpochs) {
  // Every 3 epochs, crash at 8: the checkpoint holds epoch 6; 7 and 8 are
  // trained again and come out the same.
  TempDir dir;
  const auto setup = adam_step_lr();
  const auto whole = run_uninterrupted(setup);
  const auto path = dir.file("run.pt");
  const auto resumed = run_crashed_and_resumed(setup, path, 8, /*every=*/3);
  expect_same_history(whole.history, resumed.history);
  expect_bit_equal(whole.state, resumed.state);
  EXPECT_EQ(saved_epoch(path), 10);  // the last epoch is always saved
}

TEST(Checkpoint, Every_SavesOnScheduleAndAtTheEnd) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  std::vector<int64_t> seen;  // the saved epoch when each epoch ends
  fit_small(
      quiet().epochs(7).checkpoint_path(path).checkpoint_every(3).callbacks(
          {normopt::train::on_epoch_end([&](const auto&) {
            seen.push_back(normopt::test::exists(path) ? saved_epoch(path) : 0);
          })}));
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 0, 0, 3, 3, 3, 6}));
  EXPECT_EQ(saved_epoch(path), 7);
  EXPECT_EQ(files_in(dir.path), std::vector<std::string>{"run.pt"});
}

TEST(Checkpoint, FinishedRun_ResumeReturnsSavedHistoryAndModel) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  const auto done = run_setup(
      adam_step_lr(), 0, [&](FitOptions o) { return o.checkpoint_path(path); });
  const auto bytes = read_bytes(path);
  // From other initial weights: all that matches comes from the file.
  const auto again = run_setup(adam_step_lr(), 12345, [&](FitOptions o) {
    return o.checkpoint_path(path).resume_from(path);
  });
  expect_same_history(done.history, again.history);
  for (size_t i = 0; i < again.history.epochs.size(); ++i) {
    EXPECT_EQ(again.history.epochs[i].wall_seconds,
              done.history.epochs[i].wall_seconds);
  }
  expect_bit_equal(done.state, again.state);
  EXPECT_EQ(read_bytes(path), bytes);  // nothing trained, nothing rewritten
}

TEST(Checkpoint, File_LoadsAsAModelWithTorchLoad) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  auto run = fit_small(quiet().epochs(3).checkpoint_path(path));
  auto loaded = StandardizedRegressor(LinearRegressor(2));
  torch::load(loaded, path);
  const auto& x = train_table().features;
  EXPECT_TRUE(bit_equal(run.model->predict(x), loaded->predict(x)));
}

// ---- Refused files: clear error, nothing loaded, file untouched -------------

TEST(Checkpoint, ForeignOrDamagedFiles_RefusedLeavingModelAndFile) {
  TempDir dir;
  const auto good = dir.file("good.pt");
  fit_small(quiet().epochs(4).batch_size(16).checkpoint_path(good));
  const auto good_bytes = read_bytes(good);

  const auto truncated = dir.file("truncated.pt");
  write_bytes(truncated, good_bytes.substr(0, good_bytes.size() / 2));
  const auto garbage = dir.file("garbage.pt");
  write_bytes(garbage, "epoch,loss\n1,2\n");
  const auto model_only = dir.file("model_only.pt");
  {
    auto model = StandardizedRegressor(LinearRegressor(2));
    model->fit_statistics(train_table().features, train_table().targets);
    torch::save(model, model_only);
  }
  const auto wider = dir.file("wider.pt");
  {
    Table t = train_table();
    t.features = torch::cat({t.features, t.features.narrow(1, 0, 1)}, 1);
    fit_small(quiet().epochs(2).batch_size(16).checkpoint_path(wider), t);
  }

  struct Case {
    std::string path;
    std::string optimizer;  // "adam" or "sgd"
    FitOptions options;
    std::vector<std::string> message;
  };
  const auto base = quiet().epochs(6).batch_size(16);
  const std::vector<Case> cases = {
      {dir.file("missing.pt"), "adam", base, {"missing.pt", "no such file"}},
      {truncated, "adam", base, {"truncated.pt", "truncated, corrupted"}},
      {garbage, "adam", base, {"garbage.pt", "not a checkpoint"}},
      {model_only,
       "adam",
       base,
       {"model_only.pt", "not a fit() checkpoint", "torch::load"}},
      {wider,
       "adam",
       base,
       {"wider.pt", "'normalization.mean' has shape [3]", "but [2]"}},
      {good,
       "sgd",
       base,
       {"good.pt", "normopt::optim::Adam", "normopt::optim::SGD"}},
      {good,
       "adam",
       quiet().epochs(6).batch_size(8),
       {"good.pt", "batch_size 16, this run has 8"}},
      {good,
       "adam",
       quiet().epochs(6).batch_size(16).seed(1),
       {"good.pt", "seed 0, this run has 1"}},
      {good,
       "adam",
       quiet().epochs(3).batch_size(16),
       {"good.pt", "already holds 4 epochs", "epochs = 3"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path + " " + c.message.back());
    const auto before = read_bytes(c.path);
    torch::manual_seed(1);
    auto model = StandardizedRegressor(LinearRegressor(2));
    model->fit_statistics(train_table().features * 2, train_table().targets);
    const auto state = snapshot(*model);
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    if (c.optimizer == "adam") {
      optimizer = std::make_unique<normopt::optim::Adam>(
          model->parameters(), normopt::optim::AdamOptions(1e-2));
    } else {
      optimizer = std::make_unique<normopt::optim::SGD>(
          model->parameters(), normopt::optim::SGDOptions(1e-2));
    }
    auto options = c.options;
    std::string error;
    try {
      normopt::train::fit(
          model, *optimizer, train_table(), options.resume_from(c.path));
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
    }
    EXPECT_NE(error.find("fit: cannot resume from '" + c.path + "'"),
              std::string::npos)
        << error;
    for (const auto& needle : c.message) {
      EXPECT_NE(error.find(needle), std::string::npos)
          << "message lacks '" << needle << "':\n"
          << error;
    }
    expect_bit_equal(state, snapshot(*model));
    EXPECT_TRUE(optimizer->state().empty());
    EXPECT_EQ(read_bytes(c.path), before);
  }
}

// An optimizer whose saved state reads but does not load (here: load()
// throws once armed), the last step a resume takes.
class RefusesToLoad : public normopt::optim::Adam {
 public:
  using Adam::Adam;
  bool armed = false;
  void load(torch::serialize::InputArchive& archive) override {
    if (armed) {
      armed = false;
      throw std::runtime_error("this optimizer refuses its saved state");
    }
    Adam::load(archive);
  }
};

// Resume is all or nothing: when the optimizer's state does not load, the
// model, the optimizer and the schedulers are as they were before fit().
// (Before: the model was loaded and the schedulers replayed first.)
TEST(Checkpoint, OptimizerStateThatDoesNotLoad_ChangesNothing) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  const auto options = [&](torch::optim::Optimizer& o) {
    return quiet().epochs(6).scheduler(
        std::make_shared<torch::optim::StepLR>(o, 1, 0.5));
  };
  {
    torch::manual_seed(0);
    auto model = StandardizedRegressor(LinearRegressor(2));
    RefusesToLoad adam(model->parameters(), normopt::optim::AdamOptions(3e-2));
    normopt::train::fit(model,
                        adam,
                        train_table(),
                        options(adam).epochs(4).checkpoint_path(path));
  }
  torch::manual_seed(7);
  auto model = StandardizedRegressor(LinearRegressor(2));
  RefusesToLoad adam(model->parameters(), normopt::optim::AdamOptions(3e-2));
  auto scheduler = std::make_shared<torch::optim::StepLR>(adam, 1, 0.5);
  const auto before = snapshot(*model);
  const auto file = read_bytes(path);
  adam.armed = true;
  expect_error(
      [&] {
        normopt::train::fit(
            model,
            adam,
            train_table(),
            quiet().epochs(6).scheduler(scheduler).resume_from(path));
      },
      {path,
       "optimizer state does not load",
       "this optimizer refuses its saved state"});
  expect_bit_equal(snapshot(*model), before);
  EXPECT_FALSE(model->normalization->is_adapted());
  EXPECT_TRUE(adam.state().empty());
  EXPECT_EQ(adam.param_groups()[0].options().get_lr(), 3e-2);
  EXPECT_EQ(read_bytes(path), file);
  // The scheduler was not stepped: training now from scratch with it gives
  // the learning rates of a run with a new scheduler.
  torch::manual_seed(3);
  auto fresh_model = StandardizedRegressor(LinearRegressor(2));
  RefusesToLoad fresh(fresh_model->parameters(),
                      normopt::optim::AdamOptions(3e-2));
  const auto expected =
      normopt::train::fit(fresh_model, fresh, train_table(), options(fresh));
  const auto got = normopt::train::fit(
      model, adam, train_table(), quiet().epochs(6).scheduler(scheduler));
  ASSERT_EQ(got.epochs.size(), expected.epochs.size());
  for (size_t i = 0; i < got.epochs.size(); ++i) {
    EXPECT_EQ(got.epochs[i].lr, expected.epochs[i].lr) << "epoch " << i + 1;
  }
}

TEST(Checkpoint, FlippedBytes_RefusedOrHarmless) {
  // Every 23rd byte of a checkpoint flipped, one at a time: each damaged
  // file is refused with a c10::Error, or the byte was inert (zip padding,
  // unused header bits) and the resumed run equals the one from the intact
  // file. The zip CRC check is what catches flips in tensor data and in the
  // record.
  TempDir dir;
  const auto good = dir.file("good.pt");
  const auto base = quiet().epochs(6).batch_size(16);
  auto resume = [&](const std::string& path) {
    auto options = base;
    auto run = fit_small(options.resume_from(path));
    return std::make_pair(run.history, snapshot(*run.model));
  };
  {
    auto options = base;
    fit_small(options.epochs(3).checkpoint_path(good));
  }
  const auto [intact_history, intact_state] = resume(good);
  const auto bytes = read_bytes(good);
  const auto bad = dir.file("bad.pt");
  int refused = 0, harmless = 0;
  for (size_t pos = 0; pos < bytes.size(); pos += 23) {
    auto damaged = bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ 0x5a);
    write_bytes(bad, damaged);
    try {
      const auto [h, state] = resume(bad);
      expect_same_history(intact_history, h);
      expect_bit_equal(intact_state, state);
      ++harmless;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace())
                    .find("fit: cannot resume from '" + bad + "'"),
                std::string::npos)
          << "byte " << pos << ": " << e.what_without_backtrace();
      ++refused;
    }
  }
  EXPECT_GT(refused, 3 * harmless)
      << refused << " refused, " << harmless << " harmless";
}

// ---- Format: its version and History columns, other layouts refused ---------

namespace {

// The record's entries by key, as read from a checkpoint.
using Entries = std::map<std::string, c10::IValue>;

// Copies the checkpoint `from` (a LinearRegressor(2) run) to `to` with its
// record's entries passed through `edit`: a file as another format version
// would have written it.
void write_edited(const std::string& from,
                  const std::string& to,
                  const std::function<void(Entries&)>& edit) {
  torch::serialize::InputArchive in, in_record;
  in.load_from(from);
  ASSERT_TRUE(in.try_read("normopt_fit", in_record));
  Entries entries;
  for (const auto& key : in_record.keys()) {
    if (key != "training") {  // the archive module's own attribute
      ASSERT_TRUE(in_record.try_read(key, entries[key]));
    }
  }
  edit(entries);
  auto model = StandardizedRegressor(LinearRegressor(2));
  torch::load(model, from);
  torch::serialize::OutputArchive out, out_record;
  model->save(out);
  for (const auto& [key, value] : entries) {
    if (value.isTensor()) {
      out_record.write(key, value.toTensor());
    } else {
      out_record.write(key, value);
    }
  }
  out.write("normopt_fit", out_record);
  out.save_to(to);
}

// The columns this build writes, spelled out: the reference the file is
// checked against.
constexpr const char* kColumns =
    "epoch,train_loss,train_mse,val_loss,val_mse,lr,wall_seconds";

// A 4-epoch Adam run's checkpoint at `path`; returns its History.
History write_checkpoint(const std::string& path) {
  torch::manual_seed(0);
  return fit_small(quiet().epochs(4).batch_size(16).checkpoint_path(path))
      .history;
}

// Resumes a 6-epoch run from `path`; the History and the model's state.
std::pair<History, std::vector<torch::Tensor>> resume_from(
    const std::string& path) {
  torch::manual_seed(3);
  auto run = fit_small(quiet().epochs(6).batch_size(16).resume_from(path));
  return {run.history, snapshot(*run.model)};
}

}  // namespace

// When this fails because EpochLog gained or lost a field: bump kVersion in
// csrc/train/checkpoint.cpp (files of the old layout are then refused by
// name) and update the version and columns here.
TEST(Checkpoint, Format_Version3NamesItsHistoryColumns) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  const auto history = write_checkpoint(path);
  torch::serialize::InputArchive archive, record;
  archive.load_from(path);
  ASSERT_TRUE(archive.try_read("normopt_fit", record));
  c10::IValue format, version, columns;
  record.read("format", format);
  record.read("version", version);
  record.read("history_columns", columns);
  EXPECT_EQ(format.toStringRef(), "normopt.fit_checkpoint");
  EXPECT_EQ(version.toInt(), 3);
  EXPECT_EQ(columns.toStringRef(), kColumns);
  torch::Tensor table;
  record.read("history", table);
  ASSERT_EQ(table.sizes(), torch::IntArrayRef({4, 7}));
  for (int64_t e = 0; e < 4; ++e) {
    const auto& log = history.epochs[e];
    const double row[] = {static_cast<double>(log.epoch),
                          log.train_loss,
                          log.train_mse,
                          log.val_loss,
                          log.val_mse,
                          log.lr,
                          log.wall_seconds};
    for (int64_t c = 0; c < 7; ++c) {
      EXPECT_TRUE(same_bits(table[e][c].item<double>(), row[c]))
          << "epoch " << e + 1 << " column " << c;
    }
  }
}

// Versions 1 and 2 wrote the same History columns without naming them (1
// also a digest): their files resume like this version's.
TEST(Checkpoint, Version1And2Files_StillResume) {
  TempDir dir;
  const auto path = dir.file("v3.pt");
  write_checkpoint(path);
  const auto [expected_history, expected_state] = resume_from(path);
  for (int64_t version : {1, 2}) {
    SCOPED_TRACE("version " + std::to_string(version));
    const auto old = dir.file("v" + std::to_string(version) + ".pt");
    write_edited(path, old, [version](Entries& e) {
      e["version"] = c10::IValue(version);
      e.erase("history_columns");
      if (version == 1) {
        e["digest"] = c10::IValue(int64_t{12345});
      }
    });
    const auto [history, state] = resume_from(old);
    expect_same_history(expected_history, history);
    expect_bit_equal(expected_state, state);
  }
}

TEST(Checkpoint, OtherVersionOrHistoryColumns_RefusedByName) {
  TempDir dir;
  const auto good = dir.file("good.pt");
  write_checkpoint(good);
  const std::string reads =
      "this build reads format versions 1 to 3 with history columns " +
      std::string(kColumns) +
      ": resume it with the normopt that wrote it, or torch::load its model "
      "and start a new run";
  // A column added (a newer build), one removed without a version bump, a
  // version that never existed.
  const auto wider = [](Entries& e) {
    const auto h = e["history"].toTensor();
    e["history"] = c10::IValue(
        torch::cat({h, torch::zeros({h.size(0), 1}, h.options())}, 1));
    e["history_columns"] = c10::IValue(std::string(kColumns) + ",grad_norm");
  };
  struct Case {
    std::string name;
    std::function<void(Entries&)> edit;
    std::string written;
  };
  const std::vector<Case> cases = {
      {"v4_wider.pt",
       [&](Entries& e) {
         wider(e);
         e["version"] = c10::IValue(int64_t{4});
       },
       "version 4 (history columns " + std::string(kColumns) + ",grad_norm)"},
      {"v3_wider.pt",
       wider,
       "version 3 (history columns " + std::string(kColumns) + ",grad_norm)"},
      {"v3_narrower.pt",
       [](Entries& e) {
         e["history"] = c10::IValue(e["history"].toTensor().narrow(1, 0, 6));
         e["history_columns"] = c10::IValue(
             std::string("epoch,train_loss,train_mse,val_loss,val_mse,lr"));
       },
       "version 3 (history columns "
       "epoch,train_loss,train_mse,val_loss,val_mse,lr)"},
      {"v0.pt",
       [](Entries& e) { e["version"] = c10::IValue(int64_t{0}); },
       "version 0 (history columns unknown)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = dir.file(c.name);
    write_edited(good, path, c.edit);
    const auto before = read_bytes(path);
    torch::manual_seed(1);
    auto model = StandardizedRegressor(LinearRegressor(2));
    normopt::optim::Adam adam(model->parameters(),
                              normopt::optim::AdamOptions(1e-2));
    const auto state = snapshot(*model);
    std::string error;
    try {
      normopt::train::fit(model,
                          adam,
                          train_table(),
                          quiet().epochs(6).batch_size(16).resume_from(path));
    } catch (const c10::Error& e) {
      error = e.what_without_backtrace();
    }
    EXPECT_EQ(error,
              "fit: cannot resume from '" + path +
                  "': it was written by checkpoint format " + c.written + "; " +
                  reads);
    expect_bit_equal(state, snapshot(*model));
    EXPECT_TRUE(adam.state().empty());
    EXPECT_EQ(read_bytes(path), before);
  }
}

// ---- Saving: never half a file, never non-finite values ---------------------

#if defined(__linux__)
TEST(Checkpoint, FullDisk_FailedSaveKeepsPreviousCheckpoint) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  run_setup(adam_step_lr(), 0, [&](FitOptions o) {
    return o.epochs(3).checkpoint_path(path);
  });
  const auto saved = read_bytes(path);
  ASSERT_GT(saved.size(), 4096u);

  // A file-size limit below the checkpoint's size makes the next save fail
  // part-way with EFBIG, as a full disk fails with ENOSPC.
  std::string error;
  try {
    normopt::test::FileSizeLimit limit(4096);
    run_setup(adam_step_lr(), 0, [&](FitOptions o) {
      return o.epochs(6).checkpoint_path(path).resume_from(path);
    });
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  }

  EXPECT_NE(error.find("fit: saving a checkpoint: cannot write '" + path),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("File too large"), std::string::npos) << error;
  EXPECT_NE(error.find("was left as it was"), std::string::npos) << error;
  EXPECT_EQ(read_bytes(path), saved);
  EXPECT_EQ(files_in(dir.path), std::vector<std::string>{"run.pt"});
  EXPECT_EQ(saved_epoch(path), 3);
}
#endif

TEST(Checkpoint, StaleTmpFromACrashedSave_IsIgnored) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  const std::string stale = "half a checkpoint from a killed process";
  write_bytes(path + ".tmp", stale);
  write_bytes(path + ".tmp.0123456789abcdef", stale);
  fit_small(quiet().epochs(2).checkpoint_path(path));
  EXPECT_EQ(saved_epoch(path), 2);
  // Neither read nor touched; the saves left no file of their own.
  EXPECT_EQ(read_bytes(path + ".tmp"), stale);
  EXPECT_EQ(read_bytes(path + ".tmp.0123456789abcdef"), stale);
  EXPECT_EQ(files_in(dir.path),
            (std::vector<std::string>{
                "run.pt", "run.pt.tmp", "run.pt.tmp.0123456789abcdef"}));
}

TEST(Checkpoint, NonFiniteParameter_NeverSaved) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  auto model = StandardizedRegressor(LinearRegressor(2));
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto linear = model->regressor.get<LinearRegressor>();
  // Something outside the optimizer (here a hook) poisons a weight at the
  // end of epoch 3, before that epoch's checkpoint.
  auto options = quiet().epochs(5).checkpoint_path(path).callbacks(
      {normopt::train::on_epoch_end([&](const auto& log) {
        if (log.epoch == 3) {
          torch::NoGradGuard no_grad;
          linear->weight[0][1] = std::numeric_limits<float>::quiet_NaN();
        }
      })});
  expect_error(
      [&] { normopt::train::fit(model, adam, train_table(), options); },
      {"not saving the checkpoint of epoch 3",
       path,
       "'regressor.weight' element [0, 1] is NaN or Inf",
       "previous checkpoint was left as it was"});
  EXPECT_EQ(saved_epoch(path), 2);
  EXPECT_EQ(files_in(dir.path), std::vector<std::string>{"run.pt"});
}

TEST(Checkpoint, BadOptions_Errors) {
  auto model = StandardizedRegressor(LinearRegressor(2));
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  expect_error(
      [&] {
        normopt::train::fit(
            model, adam, train_table(), quiet().checkpoint_every(0));
      },
      {"checkpoint_every must be at least 1, got 0"});
  TempDir dir;
  expect_error(
      [&] {
        normopt::train::fit(model,
                            adam,
                            train_table(),
                            quiet().epochs(1).checkpoint_path(
                                dir.file("no_such_folder/run.pt")));
      },
      {"cannot save checkpoints to",
       "no_such_folder/run.pt",
       "does not exist"});
}

// ---- Non-finite values during fit -------------------------------------------

namespace {

// A LinearRegressor trained through autograd whose weight gradient a hook
// turns into NaN at the given (1-based) step.
struct PoisonedGradient {
  StandardizedRegressor model = StandardizedRegressor(LinearRegressor(2));
  std::shared_ptr<int> steps = std::make_shared<int>(0);
  explicit PoisonedGradient(int at_step) {
    auto linear = model->regressor.get<LinearRegressor>();
    auto steps_ = steps;
    linear->weight.register_hook([steps_, at_step](torch::Tensor g) {
      return ++*steps_ == at_step ? g * std::numeric_limits<float>::quiet_NaN()
                                  : g;
    });
  }
};

}  // namespace

TEST(Fit, NonFiniteGradient_StopsNamingParameterEpochAndBatch) {
  PoisonedGradient run(/*at_step=*/7);  // 120 rows / 40: epoch 3, batch 1
  normopt::optim::Adam adam(run.model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  auto linear = run.model->regressor.get<LinearRegressor>();
  std::vector<torch::Tensor> before;
  auto options = quiet().epochs(5).batch_size(40).analytic_gradients(false);
  options.callbacks({normopt::train::on_epoch_end([&](const auto& log) {
    if (log.epoch == 2) {
      before = snapshot(*run.model);
    }
  })});
  expect_error(
      [&] { normopt::train::fit(run.model, adam, train_table(), options); },
      {"gradient of parameter 'regressor.weight' holds NaN or Inf",
       "epoch 3, batch 1 (of 3)",
       "step was not taken",
       "skip_nonfinite"});
  // The poisoned step never reached the parameters.
  expect_bit_equal(before, snapshot(*run.model));
  EXPECT_TRUE(torch::isfinite(linear->weight).all().item<bool>());
}

TEST(Fit, SkipNonfinite_OptimizerSkipsTheStepAndTrainingGoesOn) {
  PoisonedGradient run(/*at_step=*/7);
  normopt::optim::Adam adam(
      run.model->parameters(),
      normopt::optim::AdamOptions(1e-2).skip_nonfinite(true));
  const auto h = normopt::train::fit(
      run.model,
      adam,
      train_table(),
      quiet().epochs(5).batch_size(40).analytic_gradients(false));
  EXPECT_EQ(h.epochs.size(), 5u);
  EXPECT_EQ(adam.skipped_steps(), 1);
  for (const auto& p : run.model->parameters()) {
    EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
  // Adam took 14 of the 15 steps.
  const auto& state = static_cast<const normopt::optim::AdamParamState&>(
      *adam.state().begin()->second);
  EXPECT_EQ(state.step(), 14);
}

TEST(Fit, NonFiniteStatistic_Errors) {
  // Finite float64 features whose variance overflows float64.
  Table t = train_table();
  t.features = t.features.to(torch::kFloat64) * 1e200;
  auto model = StandardizedRegressor(LinearRegressor(2));
  model->to(torch::kFloat64);
  normopt::optim::Adam adam(model->parameters(),
                            normopt::optim::AdamOptions(1e-2));
  expect_error([&] { normopt::train::fit(model, adam, t, quiet().epochs(1)); },
               {"NaN or Inf"});
}
