#include "core/pg_queue.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "core/log.hpp"
#include "core/pg_connection.hpp"
#include "core/sql.hpp"

namespace imagen {

namespace {

/// Rows the rescue moves per call; the next tick takes the rest, so one
/// call never holds thousands of row locks.
constexpr int rescue_batch = 1000;

constexpr const char* no_image = "pipeline produced no image";

/// Builds a PostgreSQL array literal ('{"a","b"}') for one parameter.
class array_literal {
 public:
  void add_text(std::string_view value) {
    separate();
    text_ += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
      }
      text_ += c;
    }
    text_ += '"';
  }

  void add_number(std::int64_t value) {
    separate();
    text_ += std::to_string(value);
  }

  void add_bool(bool value) {
    separate();
    text_ += value ? 't' : 'f';
  }

  const char* c_str() {
    if (text_.back() != '}') {
      text_ += '}';
    }
    return text_.c_str();
  }

 private:
  void separate() {
    if (text_.size() > 1) {
      text_ += ',';
    }
  }

  std::string text_ = "{";
};

/// Ids and attempts of claims, the shape of every fenced statement.
struct ref_arrays {
  array_literal ids;
  array_literal attempts;

  ref_arrays() = default;
  explicit ref_arrays(const std::vector<job_ref>& refs) {
    for (const auto& ref : refs) {
      add(ref);
    }
  }

  void add(const job_ref& ref) {
    ids.add_text(ref.id);
    attempts.add_number(ref.attempt);
  }
};

/// One attempt of one job, borrowing the id from its outcome.
using attempt_key = std::pair<std::string_view, int>;

struct attempt_key_hash {
  std::size_t operator()(const attempt_key& key) const {
    return std::hash<std::string_view>{}(key.first) * 31 +
           static_cast<std::size_t>(key.second);
  }
};

/// BEGIN now; ROLLBACK on destruction unless committed. A rollback that
/// fails drops the connection, which rolls back as well.
class transaction {
 public:
  explicit transaction(pg_connection& connection) : connection_(connection) {
    connection_.run_script("begin", "BEGIN");
  }

  ~transaction() {
    if (committed_ || !connection_.connected()) {
      return;
    }
    try {
      connection_.run_script("rollback", "ROLLBACK");
    } catch (const queue_error&) {
      connection_.disconnect();
    }
  }

  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  void commit() {
    connection_.run_script("commit", "COMMIT");
    committed_ = true;
  }

 private:
  pg_connection& connection_;
  bool committed_ = false;
};

std::string uri_of(const artifact& image) {
  return image.uri.empty() ? "file://" + image.path : image.uri;
}

/// Printable ASCII only, each other byte as \xNN, at most 2,000 bytes.
std::string ascii_only(const std::string& text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= 2000) {
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string failure_message(const outcome& o) {
  if (o.failure == failure_kind::none) {
    return no_image;
  }
  if (!o.error.empty()) {
    return o.error;
  }
  return std::string(to_string(o.failure)) + " failure without a message";
}

}  // namespace

pg_queue::pg_queue(pg_settings settings, std::string worker_id,
                   retry_policy retry, int default_max_attempts)
    : pg_queue(std::make_unique<pg_connection>(std::move(settings)),
               std::move(worker_id), retry, default_max_attempts) {}

pg_queue::pg_queue(std::unique_ptr<pg_connection> connection,
                   std::string worker_id, retry_policy retry,
                   int default_max_attempts)
    : connection_(std::move(connection)),
      worker_id_(std::move(worker_id)),
      claims_(std::make_unique<sql::claim_statements>(worker_id_,
                                                      default_max_attempts)),
      retry_(retry),
      default_max_attempts_(default_max_attempts) {
  connection_->set_session_setup(sql::queue_session);
}

pg_queue::~pg_queue() = default;

std::vector<job> pg_queue::claim_batch(int limit) {
  if (limit <= 0) {
    return {};
  }
  const auto& statement = claims_->for_limit(limit);
  auto rows = sql::claim_statements::cached(limit)
                  ? connection_->execute(statement, {})
                  : connection_->query(statement, {});

  std::vector<job> jobs(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    auto& j = jobs[static_cast<std::size_t>(r)];
    j.id = rows.text(r, 0);
    j.owner_user_id = rows.text(r, 1);
    j.prompt = rows.text(r, 2);
    j.backend = rows.text(r, 3);
    j.model = rows.text(r, 4);
    j.style = rows.text(r, 5);
    j.width = rows.int32(r, 6);
    j.height = rows.int32(r, 7);
    j.steps = rows.int32(r, 8);
    j.seed = rows.int64(r, 9);
    j.attempt = rows.int32(r, 10);
    j.max_attempts = rows.int32(r, 11);
  }
  return jobs;
}

std::vector<write_result> pg_queue::write_batch(
    const std::vector<outcome>& outcomes) {
  std::vector<write_result> results(outcomes.size(), write_result::lost_lease);
  if (outcomes.empty()) {
    return results;
  }

  // Each kind of outcome goes to its own fenced statement; `at` maps a
  // statement's positions back to `outcomes`. One attempt of a job twice
  // in one batch is written once: the later copies carry attempt -1,
  // which no row has, and are fenced out (a copy of a success or failure
  // that was written still comes back applied, below). Two attempts of
  // one job may share a batch (an older one retried after its answer was
  // lost): the fence picks the current one.
  struct part {
    ref_arrays fence;
    std::vector<std::size_t> at;
    void add(const job_ref& ref, std::size_t index) {
      fence.add(ref);
      at.push_back(index);
    }
  };
  part all, done, failed, released;
  array_literal uris, digests, sizes, widths, heights, mimes;
  array_literal messages, retryable;
  std::unordered_set<attempt_key, attempt_key_hash> seen;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    bool first = seen.insert({o.job.id, o.job.attempt}).second;
    job_ref ref{o.job.id, first ? o.job.attempt : -1};
    all.add(ref, i);
    if (o.ok()) {
      const auto& image = *o.image;
      done.add(ref, i);
      uris.add_text(uri_of(image));
      digests.add_text(image.sha256);
      sizes.add_number(image.bytes);
      widths.add_number(image.width);
      heights.add_number(image.height);
      mimes.add_text(image.mime);
    } else if (o.failure == failure_kind::cancelled) {
      released.add(ref, i);
    } else {
      // Success without an artifact is a pipeline fault, as retryable as
      // a backend error.
      failed.add(ref, i);
      messages.add_text(failure_message(o));
      retryable.add_bool(o.failure == failure_kind::none ||
                         is_retryable(o.failure));
    }
  }
  auto applied = [&](const part& p, const pg_rows& rows) {
    for (int r = 0; r < rows.size(); ++r) {
      results[p.at[static_cast<std::size_t>(rows.int64(r, 0) - 1)]] =
          write_result::applied;
    }
  };

  // One kind (the usual batch) is one statement in its own transaction.
  // Several kinds share a transaction that first locks every row in id
  // order, as any other writer of these rows does.
  int kinds = !done.at.empty() + !failed.at.empty() + !released.at.empty();
  std::optional<transaction> tx;
  if (kinds > 1) {
    tx.emplace(*connection_);
    connection_->execute(sql::lock_fenced,
                         {worker_id_.c_str(), all.fence.ids.c_str(),
                          all.fence.attempts.c_str()});
  }
  if (!done.at.empty()) {
    applied(done, connection_->execute(
                      sql::write_success,
                      {worker_id_.c_str(), done.fence.ids.c_str(),
                       done.fence.attempts.c_str(), uris.c_str(),
                       digests.c_str(), sizes.c_str(), widths.c_str(),
                       heights.c_str(), mimes.c_str()}));
  }
  if (!failed.at.empty()) {
    auto max_attempts = std::to_string(default_max_attempts_);
    auto base = std::to_string(retry_.base.count());
    auto cap = std::to_string(retry_.cap.count());
    applied(failed, connection_->execute(
                        sql::write_failures,
                        {worker_id_.c_str(), failed.fence.ids.c_str(),
                         failed.fence.attempts.c_str(), messages.c_str(),
                         retryable.c_str(), max_attempts.c_str(), base.c_str(),
                         cap.c_str()}));
  }
  if (!released.at.empty()) {
    applied(released,
            connection_->execute(
                sql::release, {worker_id_.c_str(), released.fence.ids.c_str(),
                               released.fence.attempts.c_str()}));
  }

  // An outcome that the fence refuses may be our own, written by an
  // earlier try whose COMMIT went through but whose answer was lost. A
  // success then has its image registered (the uri names the attempt),
  // and its file must stay; a failure is in the row's errors. Both are
  // reported applied, not as lost leases. (A batch of one kind has
  // committed by now; these reads cannot be refused for ids the write
  // just accepted, and a transient error here makes the caller try the
  // batch again.) A cancellation leaves no trace to find: one retried
  // after a lost answer is reported as a lost lease.
  part unfenced, unrecorded;
  array_literal unfenced_uris, unrecorded_messages;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    if (results[i] == write_result::applied)
      continue;
    if (o.ok()) {
      unfenced.add({o.job.id, o.job.attempt}, i);
      unfenced_uris.add_text(uri_of(*o.image));
    } else if (o.failure != failure_kind::cancelled) {
      unrecorded.add({o.job.id, o.job.attempt}, i);
      unrecorded_messages.add_text(failure_message(o));
    }
  }
  if (!unfenced.at.empty()) {
    applied(unfenced, connection_->execute(
                          sql::registered_images,
                          {unfenced.fence.ids.c_str(), unfenced_uris.c_str()}));
  }
  if (!unrecorded.at.empty()) {
    applied(unrecorded, connection_->execute(sql::recorded_failures,
                                             {unrecorded.fence.ids.c_str(),
                                              unrecorded.fence.attempts.c_str(),
                                              unrecorded_messages.c_str()}));
  }
  if (tx) {
    tx->commit();
  }
  // The status writer logs the lost leases (job.lost_lease).
  return results;
}

std::vector<write_result> pg_queue::write_outcomes(
    const std::vector<outcome>& outcomes) {
  try {
    return write_batch(outcomes);
  } catch (const queue_error& e) {
    if (e.transient()) {
      throw;
    }
    if (outcomes.size() == 1) {
      return {write_refused(outcomes.front(), e)};
    }
    // One outcome the database refuses must not hold back the others:
    // each is written alone. A transient error midway throws, and the
    // whole batch is tried again; what was written meanwhile then comes
    // back as applied (successes) or is fenced out (failures and
    // cancellations, whose rows are then no longer running).
    log::error("outcomes.batch_refused",
               {{"outcomes", outcomes.size()}, {"error", e.what()}});
    std::vector<write_result> results;
    results.reserve(outcomes.size());
    for (const auto& o : outcomes) {
      try {
        results.push_back(write_batch({o}).front());
      } catch (const queue_error& alone) {
        if (alone.transient()) {
          throw;
        }
        results.push_back(write_refused(o, alone));
      }
    }
    return results;
  }
}

write_result pg_queue::write_refused(const outcome& refused,
                                     const queue_error& why) {
  log::error("outcome.refused", {{"job", refused.job.id},
                                 {"attempt", refused.job.attempt},
                                 {"error", why.what()}});
  // First as a failure that says why (retryable: another worker, or a
  // fixed configuration, may do better); then as a plain permanent one
  // whose message is ASCII, in case the text itself was the trouble.
  outcome failed = refused;
  failed.image.reset();
  if (refused.ok() || is_retryable(refused.failure)) {
    failed.failure = failure_kind::storage;
  }
  failed.error = (refused.ok() ? "cannot record the image: "
                               : "cannot record the failure (" +
                                     failure_message(refused) + "): ") +
                 why.what();
  for (int tries = 0; tries < 2; ++tries) {
    try {
      auto result = write_batch({failed}).front();
      if (result == write_result::applied) {
        log::warn("outcome.recorded_as_failure",
                  {{"job", refused.job.id}, {"attempt", refused.job.attempt}});
      }
      return result;
    } catch (const queue_error& e) {
      if (e.transient()) {
        throw;
      }
      failed.failure = failure_kind::invalid_input;
      failed.error = ascii_only("cannot record the outcome (" +
                                failure_message(refused) + "): " + e.what());
    }
  }
  // The row stays ours and running; once its heartbeats stop, the rescue
  // of any worker moves it on.
  log::error("outcome.unwritable",
             {{"job", refused.job.id}, {"attempt", refused.job.attempt}});
  return write_result::lost_lease;
}

std::vector<job_ref> pg_queue::heartbeat(const std::vector<job_ref>& jobs) {
  if (jobs.empty()) {
    return {};
  }
  ref_arrays refs(jobs);
  auto rows = connection_->execute(
      sql::heartbeat,
      {worker_id_.c_str(), refs.ids.c_str(), refs.attempts.c_str()});

  std::vector<job_ref> lost;
  lost.reserve(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    lost.push_back(jobs[static_cast<std::size_t>(rows.int64(r, 0) - 1)]);
  }
  return lost;
}

int pg_queue::rescue_expired(std::chrono::milliseconds lease) {
  auto lease_ms = std::to_string(lease.count());
  auto max_attempts = std::to_string(default_max_attempts_);
  auto batch = std::to_string(rescue_batch);
  auto rows = connection_->execute(
      sql::rescue_expired,
      {lease_ms.c_str(), max_attempts.c_str(), batch.c_str()});
  // The caller logs what moved (jobs.rescued).
  return rows.size() == 0 ? 0 : rows.int32(0, 0);
}

int pg_queue::release(const std::vector<job_ref>& jobs) {
  if (jobs.empty()) {
    return 0;
  }
  ref_arrays refs(jobs);
  auto rows = connection_->execute(
      sql::release,
      {worker_id_.c_str(), refs.ids.c_str(), refs.attempts.c_str()});
  return rows.size();
}

int pg_queue::requeue_orphans(const std::vector<job_ref>& keep,
                              const std::string& reason) {
  array_literal keep_ids;
  for (const auto& ref : keep) {
    keep_ids.add_text(ref.id);
  }
  auto max_attempts = std::to_string(default_max_attempts_);
  auto rows = connection_->execute(sql::requeue_orphans,
                                   {worker_id_.c_str(), keep_ids.c_str(),
                                    max_attempts.c_str(), reason.c_str()});
  return rows.size() == 0 ? 0 : static_cast<int>(rows.int64(0, 0));
}

std::optional<std::chrono::milliseconds> pg_queue::next_pending_delay() {
  auto horizon = std::to_string(retry_.cap.count());
  auto rows = connection_->execute(sql::next_pending, {horizon.c_str()});
  if (rows.size() == 0) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(rows.int64(0, 0));
}

}  // namespace imagen
