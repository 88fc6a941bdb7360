// Bad usage and bad configuration exit 2 with a message that names the key
// and the value; runtime failures exit 1; a password is never printed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/worker_env.hpp"

namespace imagen::test {
namespace {

using std::chrono::seconds;

bool mentions(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A loopback port nobody listens on: bound to learn a free number, then
/// closed again.
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

class ConfigErrors : public ::testing::Test {
 protected:
  /// Runs `run` with a configuration file holding `toml`.
  finished run_with_config(const std::string& toml) {
    auto path = env_.write_config("worker.toml", toml);
    return run_worker({"run", "--exit-when-idle", "--config", path},
                      env_.env());
  }

  worker_env env_;
};

TEST_F(ConfigErrors, UnknownTomlKeyExits2NamingTheKey) {
  auto result = run_with_config("[worker]\nlease = \"30s\"\nleese = \"5s\"\n");

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "leese")) << result.all;
  EXPECT_EQ(env_.count("running"), 0);
}

TEST_F(ConfigErrors, UnknownKeyInABackendTableExits2) {
  auto result = run_with_config(
      "[backends.fake]\nkind = \"command\"\n"
      "argv = [\"/bin/true\", \"{output}\"]\ncolour = \"red\"\n");

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "colour")) << result.all;
}

TEST_F(ConfigErrors, BadDurationExits2NamingKeyAndValue) {
  auto result = run_with_config("[worker]\nlease = \"soon\"\n");

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "lease")) << result.all;
  EXPECT_TRUE(mentions(result.all, "soon")) << result.all;
}

TEST_F(ConfigErrors, BadDurationInTheEnvironmentExits2) {
  auto result = run_worker({"run", "--exit-when-idle"},
                           env_.env({{"IMAGEN_WORKER_LEASE", "12 parsecs"}}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "IMAGEN_WORKER_LEASE")) << result.all;
  EXPECT_TRUE(mentions(result.all, "12 parsecs")) << result.all;
}

TEST_F(ConfigErrors, UnknownImagenEnvironmentVariableExits2) {
  auto result = run_worker({"run", "--exit-when-idle"},
                           env_.env({{"IMAGEN_WORKER_POLL_INTERVALL", "5s"}}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "IMAGEN_WORKER_POLL_INTERVALL"))
      << result.all;
}

TEST_F(ConfigErrors, PoolSizeZeroExits2) {
  auto result =
      run_worker({"run", "--exit-when-idle", "--pool-size", "0"}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "pool")) << result.all;
  EXPECT_TRUE(mentions(result.all, "0")) << result.all;
}

TEST_F(ConfigErrors, UnknownFlagExits2NamingIt) {
  auto result = run_worker({"run", "--frobnicate"}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "frobnicate")) << result.all;
}

TEST_F(ConfigErrors, UnknownSubcommandExits2) {
  auto result = run_worker({"fly"}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "fly")) << result.all;
}

TEST_F(ConfigErrors, MissingConfigFileExits2NamingIt) {
  auto missing = (env_.dir() / "absent.toml").string();
  auto result =
      run_worker({"run", "--exit-when-idle", "--config", missing}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "absent.toml")) << result.all;
}

TEST_F(ConfigErrors, ConfigThatIsADirectoryExits2NamingIt) {
  auto dir = (env_.dir() / "conf.d").string();
  std::filesystem::create_directories(dir);
  auto result =
      run_worker({"run", "--exit-when-idle", "--config", dir}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "\"" + dir + "\" is a directory"))
      << result.all;
  EXPECT_EQ(env_.count("running"), 0);
}

TEST_F(ConfigErrors, ProgramNotInPathExits2NamingKeyAndValue) {
  auto result = run_with_config(command_backend_toml(
      "sdcpp", {"imagen-no-such-generator", "-o", "{output}"}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all,
                       "backends.sdcpp.argv[0]: \"imagen-no-such-generator\" "
                       "is not an executable found in PATH"))
      << result.all;
}

// Administrative commands run where the generators may not be installed
// (a deploy job); they check the rest of the configuration, and `run`
// still refuses a program it cannot start.
TEST_F(ConfigErrors, OnlyRunNeedsTheGeneratorsProgram) {
  auto path = env_.write_config(
      "worker.toml", command_backend_toml("sdcpp", {"imagen-no-such-generator",
                                                    "-o", "{output}"}));
  for (auto args : std::vector<std::vector<std::string>>{
           {"migrate"},
           {"status"},
           {"enqueue", "--prompt", "x", "--backend", "sdcpp"}}) {
    SCOPED_TRACE(args.front());
    args.push_back("--config");
    args.push_back(path);
    auto result = run_worker(args, env_.env());
    EXPECT_EQ(result.status, 0) << result.all;
  }
  EXPECT_EQ(env_.count("pending"), 1);

  auto run =
      run_worker({"run", "--exit-when-idle", "--config", path}, env_.env());
  EXPECT_EQ(run.status, 2) << run.all;
  EXPECT_TRUE(mentions(run.all, "is not an executable found in PATH"))
      << run.all;

  auto typo = env_.write_config(
      "typo.toml", command_backend_toml("sdcpp", {"imagen-no-such-generator",
                                                  "{promt}", "{output}"}));
  auto migrate = run_worker({"migrate", "--config", typo}, env_.env());
  EXPECT_EQ(migrate.status, 2) << migrate.all;
  EXPECT_TRUE(mentions(migrate.all, "unknown placeholder {promt}"))
      << migrate.all;
}

TEST_F(ConfigErrors, ProgramIsSearchedInTheWorkersPath) {
  // `sh` is found in the PATH the worker was started with, and nowhere
  // once that PATH holds only an empty directory.
  auto toml = command_backend_toml("sh", {"sh", "-c", "exit 1", "{output}"});
  auto empty = env_.dir() / "empty-bin";
  std::filesystem::create_directories(empty);
  auto path = env_.write_config("worker.toml", toml);

  auto found =
      run_worker({"run", "--exit-when-idle", "--config", path}, env_.env());
  auto missing = run_worker({"run", "--exit-when-idle", "--config", path},
                            env_.env({{"PATH", empty.string()}}));

  EXPECT_EQ(found.status, 0) << found.all;
  EXPECT_EQ(missing.status, 2) << missing.all;
  EXPECT_TRUE(mentions(missing.all,
                       "backends.sh.argv[0]: \"sh\" is not an "
                       "executable found in PATH"))
      << missing.all;
}

TEST_F(ConfigErrors, ProgramPathThatIsNoExecutableExits2) {
  auto plain = (env_.dir() / "generator.txt").string();
  write_file(plain, "not a program\n");
  auto missing = (env_.dir() / "absent-generator").string();

  auto not_executable =
      run_with_config(command_backend_toml("gen", {plain, "{output}"}));
  auto absent =
      run_with_config(command_backend_toml("gen", {missing, "{output}"}));

  EXPECT_EQ(not_executable.status, 2) << not_executable.all;
  EXPECT_TRUE(mentions(not_executable.all, "backends.gen.argv[0]: \"" + plain +
                                               "\" is not executable"))
      << not_executable.all;
  EXPECT_EQ(absent.status, 2) << absent.all;
  EXPECT_TRUE(mentions(
      absent.all, "backends.gen.argv[0]: \"" + missing + "\" does not exist"))
      << absent.all;
}

TEST_F(ConfigErrors, EmptyArgvExits2) {
  auto empty =
      run_with_config("[backends.gen]\nkind = \"command\"\nargv = []\n");
  auto empty_program = run_with_config(
      "[backends.gen]\nkind = \"command\"\nargv = [\"\", \"{output}\"]\n");

  EXPECT_EQ(empty.status, 2) << empty.all;
  EXPECT_TRUE(mentions(empty.all, "backends.gen.argv: [] is empty"))
      << empty.all;
  EXPECT_EQ(empty_program.status, 2) << empty_program.all;
  EXPECT_TRUE(
      mentions(empty_program.all, "backends.gen.argv[0]: \"\" is empty"))
      << empty_program.all;
}

TEST_F(ConfigErrors, UnknownPlaceholderExits2NamingIt) {
  auto result = run_with_config(command_backend_toml(
      "sdcpp", {"/bin/sh", "-c", "exit 1", "{output}", "-p", "{promt}"}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all,
                       "backends.sdcpp.argv[5]: \"{promt}\" has "
                       "an unknown placeholder {promt}"))
      << result.all;
}

TEST_F(ConfigErrors, TooManySlotsExits2InsteadOfOverflowing) {
  auto huge =
      run_worker({"run", "--exit-when-idle", "--gpus", "0,1"},
                 env_.env({{"IMAGEN_POOL_SLOTS_PER_GPU", "2147483647"}}));
  auto product = run_worker({"run", "--exit-when-idle", "--gpus", "0,1"},
                            env_.env({{"IMAGEN_POOL_SLOTS_PER_GPU", "600"}}));

  EXPECT_EQ(huge.status, 2) << huge.all;
  EXPECT_TRUE(mentions(huge.all,
                       "IMAGEN_POOL_SLOTS_PER_GPU: 2147483647 is "
                       "more slots than 1024"))
      << huge.all;
  EXPECT_EQ(product.status, 2) << product.all;
  EXPECT_TRUE(mentions(product.all,
                       "pool.slots_per_gpu: 600 x 2 GPUs "
                       "(pool.gpus 0,1) is 1200 slots, more "
                       "slots than 1024"))
      << product.all;
  EXPECT_TRUE(mentions(product.all, "run more worker processes"))
      << product.all;
}

TEST_F(ConfigErrors, RepeatedGpuExits2) {
  auto result =
      run_worker({"run", "--exit-when-idle", "--gpus", "1,1"}, env_.env());

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "--gpus: GPU 1 is listed twice"))
      << result.all;
}

TEST_F(ConfigErrors, DurationLongerThan30DaysExits2) {
  auto lease = run_worker({"run", "--exit-when-idle"},
                          env_.env({{"IMAGEN_WORKER_LEASE", "7000000h"}}));
  auto retry = run_with_config("[worker]\nretry_cap = \"999999h\"\n");

  EXPECT_EQ(lease.status, 2) << lease.all;
  EXPECT_TRUE(mentions(lease.all,
                       "IMAGEN_WORKER_LEASE: \"7000000h\" is "
                       "longer than 720h (30 days)"))
      << lease.all;
  EXPECT_EQ(retry.status, 2) << retry.all;
  EXPECT_TRUE(mentions(retry.all,
                       "worker.retry_cap: \"999999h\" is longer "
                       "than 720h"))
      << retry.all;
}

TEST_F(ConfigErrors, ZeroLeaseExits2) {
  auto result = run_worker({"run", "--exit-when-idle"},
                           env_.env({{"IMAGEN_WORKER_LEASE", "0s"}}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(
      mentions(result.all, "IMAGEN_WORKER_LEASE: 0s must be greater than 0"))
      << result.all;
}

TEST_F(ConfigErrors, OutputDirThatIsNotUtf8Exits2ShowingTheByte) {
  auto latin1 = (env_.dir() / "caf\xe9").string();
  auto result = run_worker({"run", "--exit-when-idle"},
                           env_.env({{"IMAGEN_OUTPUT_DIR", latin1}}));

  EXPECT_EQ(result.status, 2) << result.all;
  EXPECT_TRUE(mentions(result.all, "IMAGEN_OUTPUT_DIR: \"" +
                                       env_.dir().string() +
                                       "/caf\\xe9\" is not valid UTF-8"))
      << result.all;
  EXPECT_FALSE(std::filesystem::exists(latin1));
}

TEST(Cli, HelpAndVersionExit0) {
  auto help = run_worker({"--help"}, {});
  auto version = run_worker({"--version"}, {});

  EXPECT_EQ(help.status, 0) << help.all;
  for (const char* command : {"run", "migrate", "enqueue", "status"})
    EXPECT_TRUE(mentions(help.all, command)) << help.all;
  EXPECT_EQ(version.status, 0) << version.all;
  EXPECT_TRUE(mentions(version.all, "0.1.0")) << version.all;
}

TEST(Cli, RunAgainstAnUnmigratedDatabaseExits1AskingForMigrate) {
  worker_env env(scratch_database::schema::empty);

  auto result = run_worker({"run", "--exit-when-idle"}, env.env());

  EXPECT_EQ(result.status, 1) << result.all;
  EXPECT_TRUE(mentions(result.all, "migrate")) << result.all;
  // Nothing was created behind the operator's back.
  EXPECT_EQ(scalar(env.url(), "SELECT to_regclass('imagen.jobs') IS NULL"),
            "t");
}

TEST(Cli, UnreachableDatabaseExits1AndNeverPrintsThePassword) {
  const std::string password = "Sup3r-S3cret-pw";
  auto url = "postgresql://imagen:" + password +
             "@127.0.0.1:" + std::to_string(closed_port()) + "/imagen";
  temp_dir out;

  for (auto args :
       std::vector<std::vector<std::string>>{{"migrate"},
                                             {"status"},
                                             {"enqueue", "--prompt", "x"},
                                             {"run", "--exit-when-idle"}}) {
    SCOPED_TRACE(args.front());
    auto via_env = run_worker(args,
                              {{"IMAGEN_DATABASE_URL", url},
                               {"IMAGEN_OUTPUT_DIR", out.path().string()}},
                              seconds(60));
    args.push_back("--database-url");
    args.push_back(url);
    auto via_flag = run_worker(
        args, {{"IMAGEN_OUTPUT_DIR", out.path().string()}}, seconds(60));

    EXPECT_EQ(via_env.status, 1) << via_env.all;
    EXPECT_EQ(via_flag.status, 1) << via_flag.all;
    EXPECT_FALSE(mentions(via_env.all, password)) << via_env.all;
    EXPECT_FALSE(mentions(via_flag.all, password)) << via_flag.all;
  }
}

// A URL libpq cannot read is the operator's mistake: exit 2 naming the
// setting, so that a service manager does not restart the worker forever.
TEST(Cli, DatabaseUrlLibpqCannotReadExits2NamingTheSetting) {
  const std::string url = "postgresql://u:S3CRET-pw@127.0.0.1:1/db?bogus=1";
  temp_dir out;
  for (auto args : std::vector<std::vector<std::string>>{
           {"migrate"}, {"status"}, {"run", "--exit-when-idle"}}) {
    SCOPED_TRACE(args.front());
    auto via_env =
        run_worker(args, {{"IMAGEN_DATABASE_URL", url},
                          {"IMAGEN_OUTPUT_DIR", out.path().string()}});
    args.push_back("--database-url");
    args.push_back(url);
    auto via_flag =
        run_worker(args, {{"IMAGEN_OUTPUT_DIR", out.path().string()}});

    EXPECT_EQ(via_env.status, 2) << via_env.all;
    EXPECT_EQ(via_flag.status, 2) << via_flag.all;
    EXPECT_TRUE(mentions(via_env.all, "IMAGEN_DATABASE_URL")) << via_env.all;
    EXPECT_TRUE(mentions(via_flag.all, "--database-url")) << via_flag.all;
    EXPECT_TRUE(mentions(via_flag.all, "bogus")) << via_flag.all;
    EXPECT_FALSE(mentions(via_env.all + via_flag.all, "S3CRET"))
        << via_env.all << via_flag.all;
  }
}

// libpq refuses an upper-case PASSWORD as an unknown option; the error
// that says so must still not show its value.
TEST(Cli, PasswordKeywordInAnyCaseIsNeverPrinted) {
  const std::string password = "S3CRET-pw";
  const std::string port = std::to_string(closed_port());
  for (const std::string& url :
       {"host=127.0.0.1 port=" + port + " PASSWORD=" + password,
        "postgresql://imagen@127.0.0.1:" + port +
            "/imagen?PASSWORD=" + password}) {
    SCOPED_TRACE(url);
    auto via_flag = run_worker({"status", "--database-url", url}, {});
    auto via_env = run_worker({"status"}, {{"IMAGEN_DATABASE_URL", url}});

    EXPECT_NE(via_flag.status, 0) << via_flag.all;
    EXPECT_NE(via_env.status, 0) << via_env.all;
    EXPECT_FALSE(mentions(via_flag.all, "S3CRET")) << via_flag.all;
    EXPECT_FALSE(mentions(via_env.all, "S3CRET")) << via_env.all;
  }
}

}  // namespace
}  // namespace imagen::test
