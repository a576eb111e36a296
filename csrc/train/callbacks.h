#pragma once
// Internal: fit()'s own features as callbacks (see the public
// <normopt/train/callbacks.h> for the order in which fit() calls them).

#include <normopt/train/callbacks.h>
#include <normopt/train/fit.h>

#include <memory>
#include <vector>

namespace normopt::train::detail {

/// The callbacks of one fit() run, in the calling order that
/// <normopt/train/callbacks.h> documents (the one place that says it).
std::vector<std::shared_ptr<Callback>> fit_callbacks(const FitOptions& options);

}  // namespace normopt::train::detail
