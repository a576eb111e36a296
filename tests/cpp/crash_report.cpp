// When the test binary crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL), it prints
// the test that was running and a stack (function names: the binary links
// with its symbols exported) before dying as it would have: a GPU machine
// lent without a debugger still says where. Not under the sanitizers, whose
// own reports are better.
#include <gtest/gtest.h>

#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_UNDEFINED__)
#include <execinfo.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>

namespace {

void report(int signal_number) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  char line[512];
  const int n = std::snprintf(line,
                              sizeof(line),
                              "\n*** signal %d in test %s.%s; stack:\n",
                              signal_number,
                              info != nullptr ? info->test_suite_name() : "?",
                              info != nullptr ? info->name() : "?");
  if (n > 0) {
    (void)::write(2, line, static_cast<size_t>(n));
  }
  void* frames[64];
  const int count = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, count, 2);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

const bool installed = [] {
  for (const int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    std::signal(s, report);
  }
  return true;
}();

}  // namespace
#endif
