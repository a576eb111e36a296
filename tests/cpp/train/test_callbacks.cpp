// fit()'s callbacks: the order of the hooks, what FitState holds, stopping,
// changing the log and the gradients, and their place around fit()'s own
// callbacks (schedulers, early stopping, checkpoints) and on resume.
#include "fixtures.h"

#include <normopt/normopt.h>

using namespace normopt::test::train;
using normopt::train::Callback;
using normopt::train::EpochLog;
using normopt::train::FitState;

namespace {

// Writes down every hook call with what FitState said at the time.
struct Recorder : Callback {
  std::vector<std::string> calls;
  void note(const std::string& what, const FitState& s) {
    calls.push_back(what + " e" + std::to_string(s.epoch) + " b" +
                    std::to_string(s.batch) + "/" + std::to_string(s.batches));
  }
  void on_train_begin(FitState& s) override {
    note("begin", s);
  }
  void on_resume_epoch(FitState& s, const EpochLog& log) override {
    note("resume" + std::to_string(log.epoch), s);
  }
  void on_epoch_begin(FitState& s) override {
    note("epoch", s);
  }
  void before_step(FitState& s, int64_t rows) override {
    note("step" + std::to_string(rows), s);
  }
  void on_epoch_measured(FitState& s, EpochLog& /*log*/) override {
    note("measured", s);
  }
  void on_epoch_end(FitState& s, const EpochLog& /*log*/) override {
    note("end", s);
  }
  void on_train_end(FitState& s) override {
    note("finish", s);
  }
};

struct SgdRun {
  StandardizedRegressor model = make_model();
  normopt::optim::SGD sgd{model->parameters(),
                          normopt::optim::SGDOptions(1e-2)};
  Table table = income_like_table();

  History fit(const FitOptions& options) {
    return normopt::train::fit(model, sgd, table, options);
  }
};

}  // namespace

TEST(Callbacks, HooksInOrder_WithTheStateOfTheRun) {
  torch::manual_seed(0);
  SgdRun run;
  auto recorder = std::make_shared<Recorder>();
  run.fit(
      quiet().epochs(2).batch_size(12).shuffle(false).callbacks({recorder}));
  // 20 rows in batches of 12: 2 steps per epoch, of 12 and 8 rows.
  const std::vector<std::string> expected = {"begin e0 b0/2",
                                             "epoch e1 b0/2",
                                             "step12 e1 b1/2",
                                             "step8 e1 b2/2",
                                             "measured e1 b2/2",
                                             "end e1 b2/2",
                                             "epoch e2 b0/2",
                                             "step12 e2 b1/2",
                                             "step8 e2 b2/2",
                                             "measured e2 b2/2",
                                             "end e2 b2/2",
                                             "finish e2 b2/2"};
  EXPECT_EQ(recorder->calls, expected);
}

TEST(Callbacks, RequestStop_EndsAfterThisEpoch_IgnoredAtTheLast) {
  struct StopAt : Callback {
    int64_t at;
    explicit StopAt(int64_t e) : at(e) {}
    void on_epoch_end(FitState& s, const EpochLog& log) override {
      if (log.epoch == at) {
        s.request_stop();
      }
    }
  };
  for (const int64_t at : {3, 10}) {
    torch::manual_seed(0);
    SgdRun run;
    auto h =
        run.fit(quiet().epochs(10).callbacks({std::make_shared<StopAt>(at)}));
    EXPECT_EQ(h.epochs.size(), static_cast<size_t>(at));
    // Stopping at the planned last epoch is no early stop.
    EXPECT_EQ(h.stopped_early, at < 10) << "stop at " << at;
  }
}

TEST(Callbacks, EpochMeasured_ChangedLogIsWhatEverythingAfterSees) {
  // A callback pins the training loss; early stopping (patience 2) sees no
  // improvement after epoch 1 and stops at epoch 3, although the real loss
  // falls; the History and the later callbacks hold the pinned value.
  struct Pin : Callback {
    void on_epoch_measured(FitState& /*s*/, EpochLog& log) override {
      log.train_loss = 42;
    }
  };
  std::vector<double> seen;
  torch::manual_seed(0);
  SgdRun run;
  auto h = run.fit(quiet().epochs(20).early_stopping_patience(2).callbacks(
      {std::make_shared<Pin>(),
       normopt::train::on_epoch_end(
           [&](const EpochLog& log) { seen.push_back(log.train_loss); })}));
  ASSERT_EQ(h.epochs.size(), 3u);
  EXPECT_TRUE(h.stopped_early);
  EXPECT_EQ(seen, std::vector<double>(3, 42.0));
  for (const auto& e : h.epochs) {
    EXPECT_EQ(e.train_loss, 42);
  }
}

TEST(Callbacks, BeforeStep_SeesAndMayChangeTheGradients) {
  // Zeroed gradients before every step: SGD without weight decay leaves the
  // parameters exactly as they started.
  struct ZeroGrad : Callback {
    int64_t steps = 0;
    void before_step(FitState& s, int64_t /*rows*/) override {
      for (auto& p : s.model->parameters()) {
        ASSERT_TRUE(p.grad().defined());
        p.mutable_grad().zero_();
      }
      ++steps;
    }
  };
  torch::manual_seed(0);
  SgdRun run;
  run.model->fit_statistics(run.table.features, run.table.targets);
  const auto before = snapshot(*run.model);
  auto zero = std::make_shared<ZeroGrad>();
  run.fit(quiet().epochs(3).batch_size(5).callbacks({zero}));
  EXPECT_EQ(zero->steps, 12);
  const auto after = snapshot(*run.model);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i], after[i])) << i;
  }
}

TEST(Callbacks, CallersCallbacksRunBeforeTheSchedulers) {
  // StepLR(1, 0.5) halves lr at every epoch end after the first; a caller's
  // callback runs before it, so it sees the lr the epoch used.
  torch::manual_seed(0);
  SgdRun run;
  std::vector<std::pair<double, double>> seen;  // (log.lr, optimizer's lr)
  run.fit(
      quiet()
          .epochs(4)
          .scheduler(std::make_shared<torch::optim::StepLR>(run.sgd, 1, 0.5))
          .callbacks({normopt::train::on_epoch_end([&](const EpochLog& log) {
            seen.emplace_back(log.lr,
                              run.sgd.param_groups()[0].options().get_lr());
          })}));
  ASSERT_EQ(seen.size(), 4u);
  for (const auto& [logged, current] : seen) {
    EXPECT_EQ(logged, current);
  }
  EXPECT_LT(seen.back().first, seen.front().first);
}

TEST(Callbacks, Resume_ReplaysTheSavedEpochsThenContinues) {
  TempDir dir;
  const auto path = dir.file("run.pt");
  {
    torch::manual_seed(0);
    SgdRun run;
    run.fit(quiet().epochs(2).checkpoint_path(path));
  }
  torch::manual_seed(0);
  SgdRun run;
  auto recorder = std::make_shared<Recorder>();
  run.fit(quiet().epochs(3).resume_from(path).callbacks({recorder}));
  const std::vector<std::string> expected = {"resume1 e1 b0/1",
                                             "resume2 e2 b0/1",
                                             "begin e2 b0/1",
                                             "epoch e3 b0/1",
                                             "step20 e3 b1/1",
                                             "measured e3 b1/1",
                                             "end e3 b1/1",
                                             "finish e3 b1/1"};
  EXPECT_EQ(recorder->calls, expected);
}

TEST(Callbacks, NullCallbackOrFunction_Refused) {
  SgdRun run;
  expect_error([&] { run.fit(quiet().callbacks({nullptr})); },
               {"FitOptions::callbacks holds a null callback"});
  expect_error([&] { normopt::train::on_epoch_end(nullptr); },
               {"on_epoch_end: the function is empty"});
}

TEST(Callbacks, WriteHistory_TheRunSoFarEveryNEpochsAndAtTheEnd) {
  TempDir dir;
  const auto csv = dir.file("run.csv"), json = dir.file("run.json");
  // What the file holds when each epoch ends (the writer runs first).
  std::vector<size_t> rows_seen;
  const auto count_rows = [&](const EpochLog& /*log*/) {
    std::ifstream in(csv);
    size_t lines = 0;
    for (std::string line; std::getline(in, line);) {
      ++lines;
    }
    rows_seen.push_back(lines == 0 ? 0 : lines - 1);  // minus the header
  };
  torch::manual_seed(0);
  SgdRun run;
  const auto h = run.fit(quiet().epochs(5).callbacks(
      {normopt::train::write_history(csv, json, "run", /*every=*/2),
       normopt::train::on_epoch_end(count_rows)}));
  // Written after epochs 2 and 4, then at the end (epoch 5).
  EXPECT_EQ(rows_seen, (std::vector<size_t>{0, 2, 2, 4, 4}));
  const auto final_csv = dir.file("expected.csv");
  h.write_csv(final_csv);
  std::ifstream a(csv), b(final_csv);
  std::stringstream sa, sb;
  sa << a.rdbuf();
  sb << b.rdbuf();
  EXPECT_EQ(sa.str(), sb.str());
  EXPECT_TRUE(normopt::test::exists(json));
  expect_error([] { normopt::train::write_history(""); },
               {"write_history: csv_path is empty"});
  expect_error([&] { normopt::train::write_history(csv, "", "", 0); },
               {"every must be at least 1", "got 0"});
}
