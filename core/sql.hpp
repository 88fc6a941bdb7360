// Every SQL statement of the worker, in one place, by name. Arrays travel
// as text literals ('{a,b}') and are unnested on the server, so a batch is
// one statement whatever its size. Time is always the database's now().
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/pg_connection.hpp"

namespace imagen::sql {

/// The channel every wake-up is sent on; the statements below and the
/// trigger of migration 1 spell it out.
inline constexpr const char* channel = "imagen_jobs";

/// Run on every connection of a queue (dispatcher, status writer) after
/// it connects. Every statement of a queue reaches rows through an index,
/// and so must the foreign-key check that PostgreSQL runs for each job
/// marked done (jobs.image_id -> images.id). That check's plan is cached
/// for the life of the session: made while imagen.images was small or
/// analyzed empty, it is a sequential scan, and it stays one while the
/// table grows until the next ANALYZE. Writes of 2,000 outcomes went from
/// 0.35 s to 1.7 s over four batches that way. With sequential scans off
/// the check (and everything else here) uses the primary key.
inline constexpr const char* queue_session = "SET enable_seqscan = off";

/// `text` as an SQL string literal, E'...', which means the same whatever
/// the server's standard_conforming_strings. Throws std::invalid_argument
/// on a NUL byte, which no PostgreSQL text can hold.
inline std::string literal(std::string_view text) {
  std::string quoted = "E'";
  for (char c : text) {
    if (c == '\0') {
      throw std::invalid_argument("an SQL text cannot hold a NUL byte");
    }
    if (c == '\'' || c == '\\') {
      quoted += c;
    }
    quoted += c;
  }
  return quoted += '\'';
}

/// The claim, with the values that claim_statements writes into the
/// text: {limit}, {worker} (the worker id as a literal), {max_attempts}
/// (the default for rows without one) and {spent} (the error below).
/// Returns the job columns (NULL as '' or 0) in claim order.
///
/// A pending row whose attempt counter is at the largest int cannot be
/// counted again: `attempt + 1` would fail the whole claim, for every
/// worker, on every try. Only a row written outside the worker gets
/// there; the claim fails that row for good, with an error that says
/// why, and returns only the rows it set running.
///
/// Why no parameters. With LIMIT $n, PostgreSQL cannot cost a cached
/// generic plan (it guesses a tenth of the table) and, once the table has
/// statistics, plans every claim afresh: that doubled the latency of a
/// one-row claim, which a slot waits for between two jobs. And a
/// statement with any parameter is planned afresh on each of its first
/// five runs before PostgreSQL settles on the generic plan; a pool of 32
/// slots claims with some 30 different limits, so a sixth of the claims
/// of a 20,000-job drain paid for planning. Without parameters a
/// statement is planned once, on its first run, and that plan is kept.
inline constexpr const char* claim_batch = R"(
WITH next AS (
  SELECT id, attempt = 2147483647 AS spent FROM imagen.jobs
   WHERE status = 'pending' AND run_after <= now()
   ORDER BY priority DESC, created_at, id
   LIMIT {limit}
     FOR UPDATE SKIP LOCKED),
claimed AS (
  UPDATE imagen.jobs AS j
     SET status = CASE WHEN next.spent THEN 'failed' ELSE 'running' END,
         attempt = j.attempt + (NOT next.spent)::int, claimed_by = {worker},
         claimed_at = now(),
         heartbeat_at = CASE WHEN next.spent THEN NULL ELSE now() END,
         completed_at = CASE WHEN next.spent THEN now() ELSE j.completed_at END,
         error = CASE WHEN next.spent THEN {spent} ELSE j.error END
    FROM next
   WHERE j.id = next.id
  RETURNING j.*)
SELECT id, owner_user_id, prompt, coalesce(backend, ''),
       coalesce(model, ''), coalesce(style, ''), coalesce(width, 0),
       coalesce(height, 0), coalesce(steps, 0), coalesce(seed, 0), attempt,
       coalesce(max_attempts, {max_attempts})
  FROM claimed
 WHERE status = 'running'
 ORDER BY priority DESC, created_at, id)";

/// The claim statements of one worker's connection, made on first use:
/// one per limit up to cached_limits, prepared and kept with its plan,
/// and for larger claims (pools of more slots) a text planned on every
/// call (pg_connection::query): planning is small beside a claim of that
/// size, and a dispatcher's server backend keeps at most cached_limits
/// claim plans. None takes parameters. Owns the names and texts that the
/// prepared_statements point at (map nodes do not move).
class claim_statements {
 public:
  static constexpr int cached_limits = 64;

  /// Claims for `worker_id`; rows without max_attempts get
  /// `default_max_attempts`. Throws std::invalid_argument for a worker id
  /// that cannot be an SQL text.
  claim_statements(std::string_view worker_id, int default_max_attempts)
      : worker_(literal(worker_id)),
        max_attempts_(std::to_string(default_max_attempts)) {}

  /// Whether the claim of `limit` rows is prepared and kept (true) or
  /// planned on every call (false).
  static bool cached(int limit) { return limit <= cached_limits; }

  /// The claim of `limit` rows. For a limit that is not cached, valid
  /// until the next call.
  const prepared_statement& for_limit(int limit) {
    int key = cached(limit) ? limit : 0;
    auto [it, made] = by_limit_.try_emplace(key);
    auto& claim = it->second;
    if (made || key == 0) {
      claim.name = key == 0 ? std::string("imagen_claim_batch_large")
                            : "imagen_claim_batch_" + std::to_string(key);
      claim.text = claim_batch;
      fill(claim.text, "{limit}", std::to_string(limit));
      fill(claim.text, "{max_attempts}", max_attempts_);
      fill(claim.text, "{spent}", spent_message());
      // Last: the worker id may itself contain a marker.
      fill(claim.text, "{worker}", worker_);
      claim.statement = {claim.name.c_str(), claim.text.c_str()};
    }
    return claim.statement;
  }

 private:
  struct limited_claim {
    std::string name;
    std::string text;
    prepared_statement statement{};
  };

  static std::string spent_message() {
    return literal(
        "attempt counter at its limit (2147483647): the row cannot be "
        "claimed again; reset attempt to retry it");
  }

  /// Replaces the one `marker` in `text` by `value`.
  static void fill(std::string& text, std::string_view marker,
                   const std::string& value) {
    text.replace(text.find(marker), marker.size(), value);
  }

  std::string worker_;
  std::string max_attempts_;
  std::map<int, limited_claim> by_limit_;
};

// Every write-back is fenced row by row (DESIGN.md): a row is written only
// while it is `running`, held by this worker ($1) and at the attempt the
// outcome belongs to. The fenced statements below share one fence, the
// CTE `mine` (IMAGEN_SQL_MINE), after their own CTE `o` of the batch:
//
// - `o` unnests the batch ($2 ids, $3 attempts, then any per-row values,
//   and the 1-based position n) and sorts it by id; the nested loop that
//   reads it locks the rows in that order, so two writers on overlapping
//   rows (the status writer, the dispatcher's heartbeat and orphan
//   requeue) cannot deadlock;
// - `mine` fetches each row by its primary key in a LATERAL subquery
//   behind OFFSET 0, which the planner cannot flatten, and locks it there
//   (FOR NO KEY UPDATE, the lock its UPDATE takes: no key changes, so
//   foreign keys that point at the row are not held up) before anything
//   is written. The subquery names no
//   status, so the partial lease index (status = 'running') cannot serve
//   it: a cached generic plan, trusting statistics taken while no row was
//   running, once chose that index for every id and looped over every
//   running row per id (a write of 14,000 outcomes ran past its 10 s
//   deadline). With the shape fixed, every plan is the cheap one and all
//   of them are cached;
// - `mine` keeps a row only if it is still `running` once locked, i.e.
//   after any concurrent write to it has finished; it carries `o`'s
//   columns and the row's owner_user_id and max_attempts.
//
// They return the positions (n) of the rows they wrote. The fragments are
// macros so that each statement stays one constant string.

#define IMAGEN_SQL_REFS                                             \
  "WITH o AS (\n"                                                   \
  "  SELECT * FROM unnest($2::uuid[], $3::int[]) WITH ORDINALITY\n" \
  "      AS u(id, attempt, n)\n"                                    \
  "   ORDER BY id),\n"

#define IMAGEN_SQL_MINE                                         \
  "mine AS (\n"                                                 \
  "  SELECT o.*, j.owner_user_id, j.max_attempts\n"             \
  "    FROM o CROSS JOIN LATERAL (\n"                           \
  "         SELECT j.owner_user_id, j.max_attempts, j.status\n" \
  "           FROM imagen.jobs AS j\n"                          \
  "          WHERE j.id = o.id AND j.attempt = o.attempt\n"     \
  "            AND j.claimed_by = $1\n"                         \
  "         OFFSET 0 FOR NO KEY UPDATE) AS j\n"                 \
  "   WHERE j.status = 'running')"

/// $1 worker id, $2 uuid[] ids, $3 int[] attempts. Locks the rows that
/// are still ours, in id order, and returns their positions. A batch of
/// several kinds of outcome takes its locks first, in one order, then
/// writes each kind.
inline constexpr prepared_statement lock_fenced{
    "imagen_lock_fenced", IMAGEN_SQL_REFS IMAGEN_SQL_MINE R"(
SELECT n FROM mine)"};

/// $1 worker id, $2 uuid[] job ids, $3 int[] attempts, $4 text[] uri,
/// $5 text[] sha256, $6 bigint[] bytes, $7 int[] width, $8 int[] height,
/// $9 text[] mime. Fenced. Registers each image (idempotent on job_id)
/// and marks its job done, in one statement: the image row is inserted
/// only for a job that is still ours, and the job's image_id points at
/// it. Returns the positions written.
inline constexpr prepared_statement write_success{"imagen_write_success", R"(
WITH o AS (
  SELECT *
    FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::bigint[],
                $7::int[], $8::int[], $9::text[]) WITH ORDINALITY
      AS u(id, attempt, uri, sha256, bytes, width, height, mime, n)
   ORDER BY id),
)" IMAGEN_SQL_MINE R"(,
image AS (
  INSERT INTO imagen.images AS i
         (job_id, owner_user_id, uri, sha256, bytes, width, height, mime)
  SELECT id, owner_user_id, uri, sha256, bytes, width, height,
         nullif(mime, '')
    FROM mine
      ON CONFLICT (job_id) DO UPDATE
     SET uri = excluded.uri, sha256 = excluded.sha256,
         bytes = excluded.bytes, width = excluded.width,
         height = excluded.height, mime = excluded.mime, created_at = now()
  RETURNING i.id, i.job_id),
done AS (
  UPDATE imagen.jobs AS j
     SET status = 'done', image_id = image.id, completed_at = now(),
         error = NULL, heartbeat_at = NULL
    FROM image
   WHERE j.id = image.job_id
  RETURNING j.id)
SELECT mine.n FROM mine JOIN done ON done.id = mine.id)"};

// How an attempt that did not succeed is settled, in write_failures,
// rescue_expired and requeue_orphans: the rest of the SET list after
// run_after, for an UPDATE of imagen.jobs AS j from a source `o` with a
// `retry` flag and a `message`. Back to pending without a claim, or failed
// for good; either way the attempt is appended to `errors`.
#define IMAGEN_SQL_SETTLED                                                     \
  "         status = CASE WHEN o.retry THEN 'pending' ELSE 'failed' END,\n"    \
  "         completed_at = CASE WHEN o.retry THEN NULL ELSE now() END,\n"      \
  "         claimed_by = CASE WHEN o.retry THEN NULL ELSE j.claimed_by END,\n" \
  "         heartbeat_at = NULL,\n"                                            \
  "         error = o.message,\n"                                              \
  "         errors = j.errors || jsonb_build_array(jsonb_build_object(\n"      \
  "           'attempt', j.attempt, 'at', now(), 'message', o.message))"

/// $1 worker id, $2 uuid[] job ids, $3 int[] attempts, $4 text[] messages,
/// $5 bool[] retryable, $6 default max_attempts, $7 retry base ms, $8 retry
/// cap ms. Fenced. A retryable failure with attempts left goes back to
/// pending after min(cap, base * 2^(attempt-1)) * jitter in [0.75, 1.25];
/// anything else fails. Either way the attempt is appended to `errors`.
/// Returns the positions written.
inline constexpr prepared_statement write_failures{"imagen_write_failures",
                                                   R"(
WITH o AS (
  SELECT *
    FROM unnest($2::uuid[], $3::int[], $4::text[], $5::bool[]) WITH ORDINALITY
      AS u(id, attempt, message, retryable, n)
   ORDER BY id),
)" IMAGEN_SQL_MINE R"(,
decided AS (
  SELECT id, n, message,
         retryable AND attempt < coalesce(max_attempts, $6::int) AS retry
    FROM mine),
written AS (
  UPDATE imagen.jobs AS j
     SET run_after = CASE WHEN o.retry
           THEN now() + make_interval(secs =>
                  least($8::float8,
                        $7::float8 * power(2::float8,
                                           least(greatest(j.attempt - 1, 0),
                                                 60)))
                  * (0.75 + random() * 0.5) / 1000)
           ELSE j.run_after END,
)" IMAGEN_SQL_SETTLED R"(
    FROM decided AS o
   WHERE j.id = o.id
  RETURNING j.id)
SELECT mine.n FROM mine JOIN written ON written.id = mine.id)"};

/// $1 worker id, $2 uuid[] ids, $3 int[] attempts. Fenced. Gives the
/// claims back without counting the attempt and wakes the workers; returns
/// the positions released.
inline constexpr prepared_statement release{"imagen_release",
                                            IMAGEN_SQL_REFS IMAGEN_SQL_MINE R"(,
released AS (
  UPDATE imagen.jobs AS j
     SET status = 'pending', attempt = j.attempt - 1, claimed_by = NULL,
         claimed_at = NULL, heartbeat_at = NULL, run_after = now()
    FROM mine
   WHERE j.id = mine.id
  RETURNING j.id)
SELECT mine.n, pg_notify('imagen_jobs', '')
  FROM mine JOIN released ON released.id = mine.id)"};

/// $1 worker id, $2 uuid[] ids, $3 int[] attempts. Fenced. Renews the
/// leases that are still ours; returns the positions of those that are
/// not.
inline constexpr prepared_statement heartbeat{
    "imagen_heartbeat", IMAGEN_SQL_REFS IMAGEN_SQL_MINE R"(,
renewed AS (
  UPDATE imagen.jobs AS j
     SET heartbeat_at = now()
    FROM mine
   WHERE j.id = mine.id
  RETURNING mine.n)
SELECT o.n FROM o WHERE o.n NOT IN (SELECT n FROM renewed))"};

/// $1 lease ms, $2 default max_attempts, $3 most rows per call. Moves
/// running rows whose heartbeat is older than the lease back to pending
/// (or to failed when their attempts are used up), skipping rows another
/// transaction holds. Wakes the workers when a row became pending. Returns
/// (moved, woke).
inline constexpr prepared_statement rescue_expired{"imagen_rescue_expired",
                                                   R"(
WITH expired AS (
  SELECT id, attempt < coalesce(max_attempts, $2::int) AS retry,
         CASE WHEN attempt < coalesce(max_attempts, $2::int)
           THEN 'lease expired: worker ' || coalesce(claimed_by, 'unknown')
                || ' stopped renewing'
           ELSE 'abandoned after ' || attempt || ' attempts: worker '
                || coalesce(claimed_by, 'unknown') || ' stopped renewing'
         END AS message
    FROM imagen.jobs
   WHERE status = 'running'
     AND (heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)
          -- set to running by hand, with no lease at all
          OR heartbeat_at IS NULL)
   ORDER BY heartbeat_at NULLS FIRST
   LIMIT $3
     FOR UPDATE SKIP LOCKED),
moved AS (
  UPDATE imagen.jobs AS j
     SET run_after = CASE WHEN o.retry THEN now() ELSE j.run_after END,
)" IMAGEN_SQL_SETTLED R"(
    FROM expired AS o
   WHERE j.id = o.id
  RETURNING j.status),
woke AS (
  SELECT pg_notify('imagen_jobs', '') FROM moved
   WHERE status = 'pending' LIMIT 1)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM woke))"};

/// $1 worker id, $2 uuid[] ids to keep, $3 default max_attempts, $4 the
/// reason. Moves the rows this worker holds as running, except those in
/// $2, back to pending with the attempt counted (or to failed when their
/// attempts are used up), like rescue_expired. Locks in id order, as the
/// write-back does, and waits for a write in progress rather than skipping
/// it: a row that the write finished is no longer running. Returns the
/// number of rows moved.
inline constexpr prepared_statement requeue_orphans{"imagen_requeue_orphans",
                                                    R"(
WITH orphaned AS (
  SELECT id, attempt < coalesce(max_attempts, $3::int) AS retry,
         CASE WHEN attempt < coalesce(max_attempts, $3::int) THEN $4::text
           ELSE 'abandoned after ' || attempt || ' attempts: ' || $4::text
         END AS message
    FROM imagen.jobs
   WHERE status = 'running' AND claimed_by = $1 AND id <> ALL($2::uuid[])
   ORDER BY id
     FOR UPDATE),
moved AS (
  UPDATE imagen.jobs AS j
     SET run_after = CASE WHEN o.retry THEN now() ELSE j.run_after END,
)" IMAGEN_SQL_SETTLED R"(
    FROM orphaned AS o
   WHERE j.id = o.id
  RETURNING j.status),
woke AS (
  SELECT pg_notify('imagen_jobs', '') FROM moved
   WHERE status = 'pending' LIMIT 1)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM woke))"};

#undef IMAGEN_SQL_SETTLED
#undef IMAGEN_SQL_MINE
#undef IMAGEN_SQL_REFS

/// $1 owner, $2 prompt, $3 backend, $4 model, $5 style, $6 width,
/// $7 height, $8 steps, $9 seed or NULL, $10 count, $11 priority. One
/// statement for every row; returns the ids in row order.
inline constexpr prepared_statement enqueue{"imagen_enqueue", R"(
INSERT INTO imagen.jobs
       (owner_user_id, prompt, backend, model, style, width, height, steps,
        seed, priority)
SELECT $1, $2, nullif($3, ''), nullif($4, ''), nullif($5, ''),
       nullif($6::int, 0), nullif($7::int, 0), nullif($8::int, 0),
       coalesce($9::bigint + n - 1, floor(random() * 2147483647)::bigint),
       $11::int
  FROM generate_series(1, $10::int) AS n
 ORDER BY n
RETURNING id)"};

/// $1 horizon ms. Milliseconds until the earliest pending row due within
/// the horizon is runnable (0 when one is); no row when there is none.
/// Rows due later (a far `run_after`, even 'infinity') are not waited
/// for. Only asked by `--exit-when-idle` after a claim came back empty.
inline constexpr prepared_statement next_pending{"imagen_next_pending", R"(
SELECT ceil(extract(epoch FROM greatest(min(run_after), now()) - now())
            * 1000)::int8
  FROM imagen.jobs
 WHERE status = 'pending'
   AND run_after <= now() + make_interval(secs => $1::float8 / 1000)
HAVING count(*) > 0)"};

/// $1 uuid[] job ids, $2 text[] uris. The 1-based positions of the pairs
/// whose image is the one registered for that job.
inline constexpr prepared_statement registered_images{
    "imagen_registered_images", R"(
SELECT o.n
  FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS o(job_id, uri, n)
  JOIN imagen.images AS i ON i.job_id = o.job_id AND i.uri = o.uri)"};

/// $1 uuid[] job ids, $2 int[] attempts, $3 text[] messages. The 1-based
/// positions of the failures that their job's `errors` already holds:
/// that attempt, with that message.
inline constexpr prepared_statement recorded_failures{
    "imagen_recorded_failures", R"(
SELECT o.n
  FROM unnest($1::uuid[], $2::int[], $3::text[]) WITH ORDINALITY
       AS o(job_id, attempt, message, n)
  JOIN imagen.jobs AS j ON j.id = o.job_id
 WHERE j.errors @> jsonb_build_array(
         jsonb_build_object('attempt', o.attempt, 'message', o.message)))"};

/// Rows per status; for the rows that are due (run_after has come), the
/// seconds the one due longest has been waiting; and how many rows are
/// not due yet (a retry's backoff, a job scheduled for later), which are
/// not waiting on any worker. (DESIGN.md's "oldest pending age", taken
/// from created_at, showed a retry in backoff as a late job; the README
/// lists this difference.)
inline constexpr prepared_statement queue_status{"imagen_queue_status", R"(
SELECT status, count(*),
       extract(epoch FROM now() - min(run_after)
                                  FILTER (WHERE run_after <= now()))::float8,
       count(*) FILTER (WHERE run_after > now())
  FROM imagen.jobs
 GROUP BY status)"};

/// Subscribes the connection to `channel`.
inline constexpr prepared_statement listen{"imagen_listen",
                                           "LISTEN imagen_jobs"};

/// A round trip that proves the connection is alive.
inline constexpr prepared_statement ping{"imagen_ping", "SELECT 1"};

}  // namespace imagen::sql
