// The atoms every actor of the worker understands, and the `inspect`
// overloads that let the domain types of core/job.hpp travel in messages.
// Each actor's header lists which of these it accepts, with what payload.
#pragma once

#include <exception>
#include <optional>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "core/job.hpp"

namespace imagen {

/// Something may be runnable: claim if slots are idle (listener).
using wake_atom = caf::atom_constant<caf::atom("wake")>;
/// The poll interval elapsed (listener to itself).
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// Wait once on the notification source (listener to itself).
using wait_atom = caf::atom_constant<caf::atom("wait")>;
/// Run one claim now; wakes coalesce into it (dispatcher to itself).
using claim_atom = caf::atom_constant<caf::atom("claim")>;
/// Run this job (dispatcher to a slot).
using run_atom = caf::atom_constant<caf::atom("run")>;
/// This slot finished a job with this outcome (slot to dispatcher).
using done_atom = caf::atom_constant<caf::atom("done")>;
/// Write this outcome back (dispatcher to status writer).
using outcome_atom = caf::atom_constant<caf::atom("outcome")>;
/// Write what is buffered (status writer to itself).
using flush_atom = caf::atom_constant<caf::atom("flush")>;
/// These claims are finished in the database (status writer to dispatcher).
using written_atom = caf::atom_constant<caf::atom("written")>;
/// Renew the leases of the claims in flight (dispatcher to itself).
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
/// Return expired claims of any worker to the queue (dispatcher to itself).
using rescue_atom = caf::atom_constant<caf::atom("rescue")>;
/// Stop claiming and drain (signal bridge, supervisor, dispatcher).
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
/// The shutdown grace is over: cancel what still runs (dispatcher).
using grace_atom = caf::atom_constant<caf::atom("grace")>;
/// Give up on unwritten outcomes and stop (dispatcher to itself).
using give_up_atom = caf::atom_constant<caf::atom("give_up")>;
/// The status writer was replaced by this one (supervisor to dispatcher).
using writer_atom = caf::atom_constant<caf::atom("writer")>;
/// The dispatcher was replaced by this one (supervisor to listener).
using dispatcher_atom = caf::atom_constant<caf::atom("dispatcher")>;
/// Restart this child now that its backoff is over (supervisor to itself).
using restart_atom = caf::atom_constant<caf::atom("restart")>;
/// Sweep the scratch directory now (status writer to itself).
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;

// failure_kind has no inspect overload on purpose: CAF 0.17 already
// serializes enums as their underlying type, an overload would make the
// call ambiguous, and to_string(failure_kind) from core prints it.

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job& x) {
  return f(caf::meta::type_name("job"), x.id, x.owner_user_id, x.prompt,
           x.backend, x.model, x.style, x.width, x.height, x.steps, x.seed,
           x.attempt, x.max_attempts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_ref& x) {
  return f(caf::meta::type_name("job_ref"), x.id, x.attempt);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, artifact& x) {
  return f(caf::meta::type_name("artifact"), x.path, x.uri, x.sha256, x.bytes,
           x.width, x.height, x.mime);
}

inline bool operator==(const artifact& a, const artifact& b) {
  return a.path == b.path && a.uri == b.uri && a.sha256 == b.sha256 &&
         a.bytes == b.bytes && a.width == b.width && a.height == b.height &&
         a.mime == b.mime;
}

inline bool operator==(const job& a, const job& b) {
  return a.id == b.id && a.owner_user_id == b.owner_user_id &&
         a.prompt == b.prompt && a.backend == b.backend && a.model == b.model &&
         a.style == b.style && a.width == b.width && a.height == b.height &&
         a.steps == b.steps && a.seed == b.seed && a.attempt == b.attempt &&
         a.max_attempts == b.max_attempts;
}

inline bool operator==(const outcome& a, const outcome& b) {
  return a.job == b.job && a.owner_user_id == b.owner_user_id &&
         a.image == b.image && a.failure == b.failure && a.error == b.error &&
         a.elapsed_ms == b.elapsed_ms;
}

/// CAF 0.17 knows no std::optional: the image travels as a flag and a
/// value, and is put back together after loading.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcome& x) {
  bool has_image = x.image.has_value();
  artifact image = has_image ? *x.image : artifact{};
  auto restore = caf::meta::load_callback([&]() -> caf::error {
    if (has_image)
      x.image = image;
    else
      x.image.reset();
    return caf::none;
  });
  return f(caf::meta::type_name("outcome"), x.job, x.owner_user_id, has_image,
           image, x.failure, x.error, x.elapsed_ms, restore);
}

/// The reason an actor ended, in words: the text of the exception that
/// ended it when there was one.
std::string describe(const caf::error& reason);

/// The exit reason for an exception that escaped a handler: keeps its
/// what() text, so that describe() can say why the actor ended. Every
/// actor installs it with set_exception_handler.
caf::error exception_reason(std::exception_ptr& failure);

/// 0 for an actor that ended normally, 1 for any other reason.
int exit_status(const caf::error& reason);

}  // namespace imagen
