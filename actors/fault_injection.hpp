// Test-only crash injection: the fault tests prove that every actor type
// can fail and be restarted while the queue keeps draining, so they need a
// way to make each of them throw in the real binary.
//
// IMAGEN_TEST_CRASH lists where to crash, e.g.
//   IMAGEN_TEST_CRASH="dispatcher:3,status_writer:5,listener:2,slot:4"
// means: throw in the handler of the 3rd outcome a dispatcher receives
// from a slot, the 2nd flush of a status writer, the 2nd wait of a
// listener and the 4th job a pipeline slot is given. Counts are per
// process, across restarts, so each site crashes once. The variable is
// read once, at the first crash point reached.
//
// IMAGEN_TEST_HANG takes the same list and makes the chosen message hang
// its actor for ever, deaf to cancel and exit: the watchdog that ends a
// process whose actors outlive the supervisor's decision needs one.
//
// Both exist only in builds with IMAGEN_FAULT_INJECTION (tools/test turns
// them on); elsewhere crash_point() and hang_point() are empty inline
// functions and the variables are ignored.
#pragma once

namespace imagen {

/// The message each site counts, one per actor type the supervisor or
/// the dispatcher restarts.
enum class crash_site {
  dispatcher,     // done_atom: a slot reports an outcome
  status_writer,  // flush_atom: the buffer is written
  listener,       // wait_atom: one wait on the LISTEN connection
  slot,           // run_atom: a job is handed to a slot
};

const char* to_string(crash_site site);

#if IMAGEN_FAULT_INJECTION
/// Counts one message at `site` and throws std::runtime_error when it is
/// the one IMAGEN_TEST_CRASH names.
void crash_point(crash_site site);
/// Counts one message at `site` and never returns when it is the one
/// IMAGEN_TEST_HANG names.
void hang_point(crash_site site);
#else
inline void crash_point(crash_site) {}
inline void hang_point(crash_site) {}
#endif

}  // namespace imagen
