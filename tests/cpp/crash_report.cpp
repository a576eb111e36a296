// When the test binary crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL), it prints
// the test that was running and a stack (function names: the binary links
// with its symbols exported) before dying as it would have: a GPU machine
// lent without a debugger still says where. Not under the sanitizers, whose
// own reports are better. When the stack cannot be unwound past the signal
// frame (a jump to address 0, code without unwind tables), the faulting
// address, the program counter and the return address on top of the stack,
// each named by dladdr, still say where.
#include <gtest/gtest.h>

#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_UNDEFINED__)
#include <dlfcn.h>
#include <execinfo.h>
#include <ucontext.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>

namespace {

void print(const char* text, int n) {
  if (n > 0) {
    (void)!::write(2, text, static_cast<size_t>(n));
  }
}

// "label 0x...: module(symbol+0x...)" for one code address.
void name_address(const char* label, uintptr_t address) {
  char line[768];
  Dl_info where{};
  if (address != 0 && ::dladdr(reinterpret_cast<void*>(address), &where) != 0) {
    const auto base = reinterpret_cast<uintptr_t>(where.dli_fbase);
    const auto symbol = reinterpret_cast<uintptr_t>(where.dli_saddr);
    print(line,
          std::snprintf(
              line,
              sizeof(line),
              "%s 0x%lx: %s(+0x%lx) %s+0x%lx\n",
              label,
              static_cast<unsigned long>(address),
              where.dli_fname != nullptr ? where.dli_fname : "?",
              static_cast<unsigned long>(address - base),
              where.dli_sname != nullptr ? where.dli_sname : "?",
              static_cast<unsigned long>(symbol != 0 ? address - symbol : 0)));
  } else {
    print(line,
          std::snprintf(line,
                        sizeof(line),
                        "%s 0x%lx: in no loaded module\n",
                        label,
                        static_cast<unsigned long>(address)));
  }
}

void report(int signal_number, siginfo_t* info_, void* context) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  char line[512];
  const int n = std::snprintf(line,
                              sizeof(line),
                              "\n*** signal %d in test %s.%s; stack:\n",
                              signal_number,
                              info != nullptr ? info->test_suite_name() : "?",
                              info != nullptr ? info->name() : "?");
  print(line, n);
  print(line,
        std::snprintf(line,
                      sizeof(line),
                      "fault address 0x%lx\n",
                      reinterpret_cast<unsigned long>(info_->si_addr)));
#if defined(__x86_64__)
  const auto* registers = &static_cast<ucontext_t*>(context)->uc_mcontext;
  name_address("pc", static_cast<uintptr_t>(registers->gregs[REG_RIP]));
  const auto sp = static_cast<uintptr_t>(registers->gregs[REG_RSP]);
  // After a call to a bad address the return address is on top of the
  // stack; in a frame with a frame pointer it is one word above rbp.
  name_address("[sp]", *reinterpret_cast<const uintptr_t*>(sp));
  const auto bp = static_cast<uintptr_t>(registers->gregs[REG_RBP]);
  if (bp > sp && bp - sp < (uintptr_t{1} << 24)) {
    name_address("[bp+8]", *reinterpret_cast<const uintptr_t*>(bp + 8));
  }
#else
  (void)context;
#endif
  void* frames[64];
  const int count = ::backtrace(frames, 64);
  ::backtrace_symbols_fd(frames, count, 2);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

const bool installed = [] {
  struct sigaction action {};
  action.sa_sigaction = report;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  for (const int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    sigaction(s, &action, nullptr);
  }
  return true;
}();

}  // namespace
#endif
