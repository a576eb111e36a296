#pragma once
// Internal: fetching rows ahead in a pass that reads a table's rows in a
// shuffled order.

#include <c10/macros/Macros.h>

#include <cstdint>

namespace normopt::util {

/// How many rows ahead of the one read such a pass fetches: far enough that
/// the rows in between hide a miss to memory, near enough that the fetched
/// lines are still in cache when their row comes.
inline constexpr int64_t kRowsAhead = 16;

/// In a pass over positions r = 0..n-1 that reads row order[r] of a
/// row-major table (x: `p` values a row, y: `k`), fetches the row
/// kRowsAhead positions on into cache: a shuffled epoch scatters its rows
/// over a table that may be far larger than the caches. Does nothing
/// without an order (rows read in table order are streamed, which the
/// hardware fetches by itself), near the end, or where the compiler has no
/// prefetch. Always inlined: GCC takes a call to it for one without
/// effects (a prefetch changes nothing a program can observe) and drops it.
template <typename TX, typename TY>
C10_ALWAYS_INLINE void prefetch_row_ahead(const int64_t* order,
                                          int64_t r,
                                          int64_t n,
                                          const TX* x,
                                          int64_t p,
                                          const TY* y,
                                          int64_t k) {
#if defined(__GNUC__)
  if (order && r + kRowsAhead < n) {
    const int64_t row = order[r + kRowsAhead];
    __builtin_prefetch(x + row * p);
    __builtin_prefetch(y + row * k);
  }
#else
  (void)order, (void)r, (void)n, (void)x, (void)p, (void)y, (void)k;
#endif
}

}  // namespace normopt::util
