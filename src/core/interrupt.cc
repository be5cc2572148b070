#include "core/interrupt.h"

#include <atomic>
#include <csignal>

#include "core/error.h"

namespace hlwq {
namespace {
// The one piece of process-wide state: a signal handler can only reach a global. The handler runs
// on whichever thread the signal lands on, and other threads read the flag (`hlwq serve`'s watcher),
// so it is an atomic rather than a volatile sig_atomic_t (which is safe only between a handler and the
// thread it interrupted); a lock-free atomic may be written in a signal handler.
std::atomic<bool> interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void on_interrupt(int) { interrupted.store(true); }
}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

bool interrupt_requested() { return interrupted.load(); }

void throw_if_interrupted() {
  if (interrupted.load()) fail("interrupted, no output written");
}

}  // namespace hlwq
