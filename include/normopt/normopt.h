#pragma once

/// Umbrella header: everything normopt offers.

#include <normopt/config.h>
#include <normopt/data/csv.h>
#include <normopt/data/csv_reader.h>
#include <normopt/data/dataset.h>
#include <normopt/data/stream.h>
#include <normopt/data/synthetic.h>
#include <normopt/data/table.h>
#include <normopt/deploy/predictor.h>
#include <normopt/macros.h>
#include <normopt/nn/affine.h>
#include <normopt/nn/linear_regressor.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/nn/target_standardizer.h>
#include <normopt/ops/moments.h>
#include <normopt/ops/optim_step.h>
#include <normopt/optim/adam.h>
#include <normopt/optim/adamw.h>
#include <normopt/optim/describe.h>
#include <normopt/optim/sgd.h>
#include <normopt/train/callbacks.h>
#include <normopt/train/closed_form.h>
#include <normopt/train/diagnostics.h>
#include <normopt/train/fit.h>
#include <normopt/train/forecast_watch.h>
#include <normopt/train/history.h>
