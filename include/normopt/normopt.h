#pragma once

/// Umbrella header: everything normopt offers.

#include <normopt/macros.h>
#include <normopt/nn/linear_regressor.h>
#include <normopt/nn/normalization.h>
#include <normopt/nn/standardized_regressor.h>
#include <normopt/nn/target_standardizer.h>
#include <normopt/ops/moments.h>
