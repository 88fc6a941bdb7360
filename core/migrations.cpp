#include "core/migrations.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/pg_connection.hpp"

namespace imagen {

namespace {

struct migration {
  int version;
  const char* name;
  const char* sql;
};

// Migration 1: the schema of DESIGN.md. The worker's own columns have
// defaults (and NOT NULL where the claim depends on them), so the web
// application's INSERT of owner_user_id and prompt keeps working.
// imagen.images.job_id has no foreign key: jobs already reference images,
// and a cycle would make deleting either side awkward.
constexpr const char* schema_v1 = R"(
CREATE TABLE imagen.images (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id        uuid NOT NULL UNIQUE,
  owner_user_id text NOT NULL,
  uri           text NOT NULL,
  sha256        text NOT NULL,
  bytes         bigint,
  width         int,
  height        int,
  mime          text,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE imagen.jobs (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_user_id text NOT NULL,
  prompt        text NOT NULL,
  backend       text,
  model         text,
  width         int,
  height        int,
  steps         int,
  seed          bigint,
  style         text,
  status        text NOT NULL DEFAULT 'pending'
                CONSTRAINT jobs_status_check
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
  image_id      uuid REFERENCES imagen.images (id) ON DELETE SET NULL,
  error         text,
  created_at    timestamptz DEFAULT now(),
  completed_at  timestamptz,
  priority      int NOT NULL DEFAULT 0,
  run_after     timestamptz NOT NULL DEFAULT now(),
  attempt       int NOT NULL DEFAULT 0,
  max_attempts  int DEFAULT 3,
  claimed_by    text,
  claimed_at    timestamptz,
  heartbeat_at  timestamptz,
  errors        jsonb NOT NULL DEFAULT '[]'
);

-- The claim reads pending rows in this order and stops at its LIMIT.
CREATE INDEX jobs_claim_idx ON imagen.jobs (priority DESC, created_at, id)
  WHERE status = 'pending';

-- The rescue looks for running rows with an old heartbeat.
CREATE INDEX jobs_lease_idx ON imagen.jobs (heartbeat_at)
  WHERE status = 'running';

-- One wake-up per inserting statement, not per row; PostgreSQL folds equal
-- notifications of one transaction into one.
CREATE FUNCTION imagen.notify_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('imagen_jobs', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert
  AFTER INSERT ON imagen.jobs
  FOR EACH STATEMENT EXECUTE FUNCTION imagen.notify_jobs();
)";

// In version order; a migration, once released, never changes.
constexpr migration migrations[] = {
    {1, "schema", schema_v1},
};

// Serialises concurrent migrate() calls across processes ("imagen" in
// ASCII); released at the end of the transaction.
constexpr const char* take_lock =
    "SELECT pg_advisory_xact_lock(115918506517870)";

// On a migrated database each IF NOT EXISTS raises a NOTICE ("already
// exists, skipping") that would reach the operator as a log line on
// every migrate; only these two statements hear warnings alone. The
// setting returns to the session's own for the migrations.
constexpr const char* bootstrap = R"(
SET LOCAL client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS imagen;
CREATE TABLE IF NOT EXISTS imagen.schema_migrations (
  version    int PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now()
);
SET LOCAL client_min_messages TO DEFAULT;)";

constexpr prepared_statement applied_versions{
    "imagen_applied_versions", "SELECT version FROM imagen.schema_migrations"};

constexpr prepared_statement record_version{
    "imagen_record_version",
    "INSERT INTO imagen.schema_migrations (version) VALUES ($1::int)"};

}  // namespace

int latest_schema_version() {
  return std::end(migrations)[-1].version;
}

std::vector<int> migrate(const pg_settings& settings) {
  pg_connection connection(settings);
  connection.run_script("migrate begin", "BEGIN");
  connection.run_script("migrate lock", take_lock);
  connection.run_script("migrate bootstrap", bootstrap);

  auto rows = connection.query(applied_versions, {});
  std::vector<int> done;
  for (int r = 0; r < rows.size(); ++r) {
    done.push_back(rows.int32(r, 0));
  }

  std::vector<int> applied;
  for (const auto& m : migrations) {
    if (std::find(done.begin(), done.end(), m.version) != done.end()) {
      continue;
    }
    connection.run_script(m.name, m.sql);
    auto version = std::to_string(m.version);
    connection.query(record_version, {version.c_str()});
    applied.push_back(m.version);
  }

  connection.run_script("migrate commit", "COMMIT");
  for (int version : applied) {
    log::info("db.migrated", {{"version", version}});
  }
  return applied;
}

}  // namespace imagen
