#include "core/interrupt.h"

#include <csignal>

#include "core/error.h"

namespace hlwq {
namespace {
// The one piece of process-wide state: a signal handler can only reach a global.
volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) { interrupted = 1; }
}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

bool interrupt_requested() { return interrupted != 0; }

void throw_if_interrupted() {
  if (interrupted != 0) fail("interrupted, no output written");
}

}  // namespace hlwq
