#include <chrono>
#include <regex>
#include <string>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include "core/pg_admin.hpp"
#include "core/pg_connection.hpp"
#include "core/queue.hpp"
#include "core/sql.hpp"
#include "core/worker_id.hpp"
#include "tests/pg/pg_fixture.hpp"

namespace imagen::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

using connection = pg_test;

TEST_F(connection, AStatementBlockedByALockEndsAtTheDeadline) {
  add_jobs(1);
  pg_queue queue(settings(milliseconds(500)), "worker-a", {}, 3);
  auto j = queue.claim_batch(1).at(0);
  PGconn* holder = PQconnectdb(db.url().c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK) << PQerrorMessage(holder);
  PQclear(PQexec(holder, "BEGIN"));
  PQclear(PQexec(holder, "SELECT 1 FROM imagen.jobs FOR UPDATE"));

  auto start = steady_clock::now();
  try {
    queue.heartbeat({ref_of(j)});
    ADD_FAILURE() << "heartbeat returned while the row was locked";
  } catch (const queue_error& e) {
    EXPECT_TRUE(e.transient());
    EXPECT_NE(std::string(e.what()).find("imagen_heartbeat"), std::string::npos)
        << e.what();
  }
  auto elapsed = steady_clock::now() - start;
  EXPECT_GE(elapsed, milliseconds(450));
  EXPECT_LT(elapsed, milliseconds(2000));

  PQclear(PQexec(holder, "COMMIT"));
  PQfinish(holder);
  // The cancelled statement left nothing behind; a new connection works.
  EXPECT_TRUE(queue.heartbeat({ref_of(j)}).empty());
}

TEST_F(connection, ALostConnectionIsTransientAndTheNextCallReconnects) {
  add_jobs(2);
  auto s = settings();
  s.application_name = "imagen-test-lost";
  pg_queue queue(s, "worker-a", {}, 3);
  ASSERT_EQ(queue.claim_batch(1).size(), 1u);
  query(test_admin_url(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = $1",
        {"imagen-test-lost"});

  try {
    queue.claim_batch(1);
    ADD_FAILURE() << "a claim on a terminated connection succeeded";
  } catch (const queue_error& e) {
    EXPECT_TRUE(e.transient()) << e.what();
  }
  EXPECT_EQ(queue.claim_batch(1).size(), 1u);
}

TEST_F(connection, ABadStatementInputIsNotTransient) {
  auto queue = make_queue();
  try {
    queue->heartbeat({job_ref{"not-a-uuid", 1}});
    ADD_FAILURE() << "heartbeat accepted an invalid id";
  } catch (const queue_error& e) {
    EXPECT_FALSE(e.transient()) << e.what();
  }
  // The connection is still usable.
  EXPECT_TRUE(queue->claim_batch(1).empty());
}

TEST_F(connection, ASessionSetupRunsOnConnectAndAFailingOneDropsTheLink) {
  pg_connection session(settings());
  session.set_session_setup("SET statement_timeout = '7s'");
  auto rows = session.query({"show", "SHOW statement_timeout"}, {});
  ASSERT_EQ(rows.size(), 1);
  EXPECT_EQ(rows.text(0, 0), "7s");

  // Its failure says nothing about the statement that connected, which
  // the caller would otherwise take for bad data: it is transient.
  pg_connection broken(settings());
  broken.set_session_setup("SET imagen_no_such_setting = 1");
  try {
    broken.query(sql::ping, {});
    ADD_FAILURE() << "a failing session setup was ignored";
  } catch (const queue_error& e) {
    EXPECT_TRUE(e.transient()) << e.what();
    EXPECT_NE(std::string(e.what()).find("session setup"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(broken.connected());
}

TEST(connection_errors, NeverShowThePassword) {
  for (std::string url : {
           "postgresql://imagen:s3cr3t-pw@127.0.0.1:1/imagen",
           "host=127.0.0.1 port=1 user=imagen password=s3cr3t-pw",
       }) {
    pg_settings s;
    s.url = url;
    s.deadline = seconds(2);
    pg_queue queue(s, "worker-a", {}, 3);
    try {
      queue.claim_batch(1);
      ADD_FAILURE() << "connected to a closed port";
    } catch (const queue_error& e) {
      EXPECT_TRUE(e.transient());
      EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("connect"), std::string::npos)
          << e.what();
    }
  }
}

TEST(redact_url, HidesPasswordsInEveryForm) {
  EXPECT_EQ(redact_url("postgresql://imagen:s3cr3t@db:5432/imagen"),
            "postgresql://imagen:***@db:5432/imagen");
  EXPECT_EQ(redact_url("postgres://u:p%40ss@db/x?password=two&sslmode=off"),
            "postgres://u:***@db/x?password=***&sslmode=off");
  EXPECT_EQ(redact_url("host=db password='a b\\'c' user=u"),
            "host=db password=*** user=u");
  EXPECT_EQ(redact_url("host=db password = plain dbname=x"),
            "host=db password = *** dbname=x");
  EXPECT_EQ(redact_url("postgresql://u@db/x"), "postgresql://u@db/x");
  EXPECT_EQ(redact_url(""), "");
  // Passwords holding '/', '?' or '@' (base64, pasted) end at the last '@'.
  EXPECT_EQ(redact_url("postgresql://u:Se/Cr?Et@Pw@db:5432/x"),
            "postgresql://u:***@db:5432/x");
}

TEST(scrub_secrets, MasksWhatLibpqQuotesOfAPasswordItCouldNotParse) {
  // libpq's own messages for these URLs, as it words them.
  const std::string percent = "postgresql://postgres:Se%zzCrEtPw@127.0.0.1/i";
  auto masked =
      scrub_secrets(percent, "invalid percent-encoded token: \"Se%zzCrEtPw\"");
  EXPECT_EQ(masked.find("CrEtPw"), std::string::npos) << masked;

  const std::string ipv6 = "postgresql://postgres:SeCrEtPw@[::1/imagen";
  masked = scrub_secrets(ipv6,
                         "end of string reached when looking for "
                         "matching \"]\" in IPv6 host address in URI: "
                         "\"" +
                             ipv6 + "\"");
  EXPECT_EQ(masked.find("SeCrEtPw"), std::string::npos) << masked;
  EXPECT_NE(masked.find("[::1/imagen"), std::string::npos) << masked;

  const std::string at = "postgresql://postgres:Se@CrEtPw@127.0.0.1/imagen";
  masked = scrub_secrets(
      at, "could not translate host name \"CrEtPw@127.0.0.1\" to address");
  EXPECT_EQ(masked.find("CrEtPw"), std::string::npos) << masked;
  EXPECT_NE(masked.find("127.0.0.1"), std::string::npos) << masked;

  // Nothing to hide: the message is left alone.
  EXPECT_EQ(scrub_secrets("postgresql://u@db/x", "connection refused"),
            "connection refused");
}

TEST(redact_url, ErrorsForUnparseableUrlsNeverShowThePassword) {
  for (const std::string url :
       {"postgresql://postgres:Se%zzCrEtPw@127.0.0.1:1/imagen",
        "postgresql://postgres:SeCrEtPw@[::1/imagen",
        "postgresql://postgres:Se@CrEtPw@127.0.0.1:1/imagen",
        "postgresql://postgres:Se/CrEtPw@127.0.0.1:1/imagen"}) {
    pg_connection db(pg_settings{url, std::chrono::seconds(2), "t"});
    try {
      db.query(sql::ping, {});
      ADD_FAILURE() << "connected with " << url;
    } catch (const queue_error& e) {
      std::string what = e.what();
      EXPECT_EQ(what.find("CrEtPw"), std::string::npos) << what;
    }
  }
}

TEST_F(connection, AServerNoticeBecomesALogEventNotARawLine) {
  pg_connection db_connection(settings());
  ::testing::internal::CaptureStderr();
  db_connection.run_script(
      "notice", "DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$");
  auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("event=db.notice"), std::string::npos) << err;
  EXPECT_NE(err.find("hello from the server"), std::string::npos) << err;
  EXPECT_EQ(err.find("\nNOTICE:"), std::string::npos) << err;
  EXPECT_NE(err.rfind("NOTICE:", 0), 0u) << err;
}

TEST(worker_id, NamesHostPidAndARandomSuffix) {
  auto id = make_worker_id();

  std::smatch parts;
  ASSERT_TRUE(
      std::regex_match(id, parts, std::regex("(.+):([0-9]+):([0-9a-f]{6})")))
      << id;
  EXPECT_EQ(parts[2].str(), std::to_string(::getpid()));
  EXPECT_NE(make_worker_id(), id);
}

// A host name in Latin-1 ("caf\xe9") is no text in a UTF-8 database:
// every statement carrying the worker id would fail.
TEST(worker_id, KeepsOnlyPrintableAsciiOfTheHostName) {
  EXPECT_EQ(printable_host("gpu-07.example"), "gpu-07.example");
  EXPECT_EQ(printable_host("caf\xe9\x01o'k\\"), "caf__o'k\\");
}

using admin = pg_test;

TEST_F(admin, EnqueueInsertsEveryRowInOneStatement) {
  enqueue_request request;
  request.owner = "ops";
  request.prompt = "a harbour";
  request.width = 64;
  request.seed = 42;
  request.count = 3;
  request.priority = 2;

  auto ids = enqueue(settings(), request);

  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(column(ids[0], "seed"), "42");
  EXPECT_EQ(column(ids[1], "seed"), "43");
  EXPECT_EQ(column(ids[2], "seed"), "44");
  EXPECT_EQ(column(ids[0], "width"), "64");
  EXPECT_TRUE(is_null(ids[0], "height"));
  EXPECT_TRUE(is_null(ids[0], "backend"));
  EXPECT_EQ(column(ids[0], "priority"), "2");
  EXPECT_EQ(column(ids[0], "owner_user_id"), "ops");
  // Same transaction, same now(): one statement.
  EXPECT_EQ(count("SELECT count(DISTINCT xmin::text) FROM imagen.jobs"), 1);
}

TEST_F(admin, EnqueueWithoutASeedGivesEachRowItsOwn) {
  enqueue_request request;
  request.prompt = "a harbour";
  request.count = 4;

  auto ids = enqueue(settings(), request);

  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(count("SELECT count(*) FROM imagen.jobs WHERE seed IS NULL"), 0);
  EXPECT_GT(count("SELECT count(DISTINCT seed) FROM imagen.jobs"), 1);
}

TEST_F(admin, EnqueueRefusesACountOutOfRange) {
  enqueue_request request;
  request.prompt = "p";
  request.count = 0;

  EXPECT_THROW(enqueue(settings(), request), std::invalid_argument);
}

TEST_F(admin, StatusCountsRowsPerStatusAndTheOldestPending) {
  exec(db.url(),
       "INSERT INTO imagen.jobs (owner_user_id, prompt, created_at) "
       "VALUES ('u', 'a', now() - interval '90 seconds'), ('u', 'b', now())");
  add_jobs(1);
  make_queue()->claim_batch(1);

  auto counts = queue_status(settings());

  EXPECT_EQ(counts.by_status, (std::map<std::string, std::int64_t>{
                                  {"pending", 2}, {"running", 1}}));
  ASSERT_TRUE(counts.oldest_pending_seconds.has_value());
  // The claim took the 90 s old row; the oldest pending is now ~0 s old.
  EXPECT_LT(*counts.oldest_pending_seconds, 60.0);
  EXPECT_EQ(counts.scheduled_pending, 0);
}

// A row waiting for its retry's backoff, or scheduled for later, is not
// late: "oldest pending" is how long a due row has waited since it came
// due, and the rows not due yet are counted apart.
TEST_F(admin, StatusTellsRowsNotDueYetFromRowsWaiting) {
  exec(db.url(),
       "INSERT INTO imagen.jobs (owner_user_id, prompt, created_at, "
       "run_after) VALUES "
       "('u', 'backing off', now() - interval '1 hour', "
       " now() + interval '1 hour'), "
       "('u', 'due', now() - interval '1 hour', now() - interval '2 min')");

  auto counts = queue_status(settings());

  EXPECT_EQ(counts.by_status,
            (std::map<std::string, std::int64_t>{{"pending", 2}}));
  EXPECT_EQ(counts.scheduled_pending, 1);
  ASSERT_TRUE(counts.oldest_pending_seconds.has_value());
  EXPECT_GT(*counts.oldest_pending_seconds, 110.0);
  EXPECT_LT(*counts.oldest_pending_seconds, 600.0);

  exec(db.url(), "DELETE FROM imagen.jobs WHERE prompt = 'due'");
  counts = queue_status(settings());
  EXPECT_EQ(counts.scheduled_pending, 1);
  EXPECT_FALSE(counts.oldest_pending_seconds.has_value());
}

}  // namespace
}  // namespace imagen::test
