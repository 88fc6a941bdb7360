#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "core/migrations.hpp"
#include "core/pg_settings.hpp"
#include "tests/support/db.hpp"

namespace imagen::test {
namespace {

pg_settings settings_of(const scratch_database& db) {
  pg_settings s;
  s.url = db.url();
  return s;
}

std::string column_default(const std::string& url, const std::string& name) {
  auto rows = query(url,
                    "SELECT coalesce(column_default, '<none>') "
                    "FROM information_schema.columns "
                    "WHERE table_schema = 'imagen' AND table_name = 'jobs' "
                    "AND column_name = $1",
                    {name});
  return rows.empty() ? "<missing>" : rows[0][0].value_or("");
}

TEST(Migrations, SecondRunIsANoOp) {
  scratch_database db(scratch_database::schema::empty);

  EXPECT_EQ(migrate(settings_of(db)), std::vector<int>{1});
  EXPECT_EQ(migrate(settings_of(db)), std::vector<int>{});

  EXPECT_EQ(scalar(db.url(), "SELECT count(*) FROM imagen.schema_migrations"),
            "1");
  EXPECT_EQ(latest_schema_version(), 1);
}

TEST(Migrations, CreatesTheDesignedColumnsDefaultsIndexesAndTrigger) {
  scratch_database db;

  for (const char* name :
       {"id",         "owner_user_id", "prompt",       "backend",
        "model",      "width",         "height",       "steps",
        "seed",       "style",         "status",       "image_id",
        "error",      "created_at",    "completed_at", "priority",
        "run_after",  "attempt",       "max_attempts", "claimed_by",
        "claimed_at", "heartbeat_at",  "errors"}) {
    EXPECT_NE(column_default(db.url(), name), "<missing>") << name;
  }
  EXPECT_EQ(column_default(db.url(), "status"), "'pending'::text");
  EXPECT_EQ(column_default(db.url(), "priority"), "0");
  EXPECT_EQ(column_default(db.url(), "attempt"), "0");
  EXPECT_EQ(column_default(db.url(), "max_attempts"), "3");
  EXPECT_EQ(column_default(db.url(), "run_after"), "now()");
  EXPECT_EQ(column_default(db.url(), "created_at"), "now()");
  EXPECT_EQ(column_default(db.url(), "errors"), "'[]'::jsonb");
  EXPECT_EQ(column_default(db.url(), "id"), "gen_random_uuid()");

  EXPECT_EQ(scalar(db.url(),
                   "SELECT indexdef FROM pg_indexes WHERE schemaname = "
                   "'imagen' AND indexname = 'jobs_claim_idx'"),
            "CREATE INDEX jobs_claim_idx ON imagen.jobs USING btree "
            "(priority DESC, created_at, id) WHERE (status = 'pending'::text)");
  EXPECT_EQ(scalar(db.url(),
                   "SELECT indexdef FROM pg_indexes WHERE schemaname = "
                   "'imagen' AND indexname = 'jobs_lease_idx'"),
            "CREATE INDEX jobs_lease_idx ON imagen.jobs USING btree "
            "(heartbeat_at) WHERE (status = 'running'::text)");

  // Bit 0 of tgtype is ROW; a statement-level trigger leaves it clear.
  EXPECT_EQ(scalar(db.url(),
                   "SELECT (tgtype & 1)::text FROM pg_trigger "
                   "WHERE tgname = 'jobs_notify_insert'"),
            "0");

  EXPECT_THROW(exec(db.url(),
                    "INSERT INTO imagen.jobs (owner_user_id, prompt, status) "
                    "VALUES ('u', 'p', 'lost')"),
               std::runtime_error);
}

TEST(Migrations, ConcurrentRunsApplyEachVersionOnce) {
  scratch_database db(scratch_database::schema::empty);
  std::vector<int> first, second;
  std::string error;

  std::thread a([&] { first = migrate(settings_of(db)); });
  std::thread b([&] {
    try {
      second = migrate(settings_of(db));
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  a.join();
  b.join();

  EXPECT_EQ(error, "");
  EXPECT_EQ(first.size() + second.size(), 1u);
  EXPECT_EQ(scalar(db.url(), "SELECT count(*) FROM imagen.schema_migrations"),
            "1");
}

TEST(Migrations, TheWebApplicationsInsertKeepsWorking) {
  scratch_database db;

  exec(db.url(),
       "INSERT INTO imagen.jobs (owner_user_id, prompt) VALUES ('u1', 'cat')");

  auto rows = query(db.url(),
                    "SELECT status, attempt::text, priority::text, "
                    "errors::text, max_attempts::text, "
                    "(created_at IS NOT NULL)::text, "
                    "(run_after <= now())::text FROM imagen.jobs");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "pending");
  EXPECT_EQ(rows[0][1], "0");
  EXPECT_EQ(rows[0][2], "0");
  EXPECT_EQ(rows[0][3], "[]");
  EXPECT_EQ(rows[0][4], "3");
  EXPECT_EQ(rows[0][5], "true");
  EXPECT_EQ(rows[0][6], "true");
}

TEST(Migrations, TriggerNotifiesOncePerInsertingTransaction) {
  scratch_database db;
  PGconn* listener = PQconnectdb(db.url().c_str());
  ASSERT_EQ(PQstatus(listener), CONNECTION_OK) << PQerrorMessage(listener);
  PQclear(PQexec(listener, "LISTEN imagen_jobs"));

  // Three rows in one statement, then two statements in one transaction.
  exec(db.url(),
       "INSERT INTO imagen.jobs (owner_user_id, prompt) "
       "SELECT 'u', 'p' FROM generate_series(1, 3)");
  exec(db.url(),
       "BEGIN; "
       "INSERT INTO imagen.jobs (owner_user_id, prompt) VALUES ('u', 'a'); "
       "INSERT INTO imagen.jobs (owner_user_id, prompt) VALUES ('u', 'b'); "
       "COMMIT");

  // A round trip on the listening connection delivers every notification
  // committed before it, so counting afterwards needs no waiting.
  PQclear(PQexec(listener, "SELECT 1"));
  int notifications = 0;
  while (PGnotify* n = PQnotifies(listener)) {
    EXPECT_STREQ(n->relname, "imagen_jobs");
    ++notifications;
    PQfreemem(n);
  }
  PQfinish(listener);

  EXPECT_EQ(notifications, 2);
}

}  // namespace
}  // namespace imagen::test
