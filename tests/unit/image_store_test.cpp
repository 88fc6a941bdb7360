// image_store: <id>-<attempt>.png sharded under the output directory, written
// atomically, described by a correct artifact; hostile ids never leave
// the directory; an unwritable directory is a storage_error.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/image_store.hpp"
#include "core/png.hpp"
#include "core/sha256.hpp"
#include "tests/support/process.hpp"

namespace imagen {
namespace {

namespace fs = std::filesystem;

const std::string job_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

std::vector<std::uint8_t> some_png(int width = 16, int height = 8) {
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(width) *
                                static_cast<std::size_t>(height) * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<std::uint8_t>(i * 31);
  return encode_png(width, height, rgb);
}

std::vector<std::uint8_t> file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Every regular file under `root`, as paths relative to it.
std::vector<std::string> files_under(const fs::path& root) {
  std::vector<std::string> found;
  if (!fs::exists(root))
    return found;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (!entry.is_directory())
      found.push_back(fs::relative(entry.path(), root).string());
  return found;
}

class image_store_test : public ::testing::Test {
 protected:
  /// The storage_error message of storing under `id`; fails the test when
  /// the store succeeds.
  std::string store_error(image_store& store, const std::string& id) {
    try {
      store.store(id, 1, some_png(), 16, 8);
    } catch (const storage_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "stored an image for job id \"" << id << "\"";
    return "";
  }

  test::temp_dir root_{"imagen-store-test"};
  fs::path out_ = root_.path() / "out" / "images";
};

TEST_F(image_store_test, writes_the_id_png_in_a_shard_under_the_dir) {
  image_store store{out_.string()};
  auto png = some_png();
  auto a = store.store(job_id, 1, png, 16, 8);

  const fs::path expected = out_ / "3f" / (job_id + "-1.png");
  EXPECT_EQ(a.path, expected.string());
  EXPECT_EQ(store.path_for(job_id, 1), expected.string());
  ASSERT_TRUE(fs::is_regular_file(expected));
  EXPECT_EQ(file_bytes(expected), png);
  // Nothing else: no temporary file is left beside it.
  EXPECT_EQ(files_under(out_),
            std::vector<std::string>{"3f/" + job_id + "-1.png"});
}

TEST_F(image_store_test, the_artifact_describes_the_file) {
  image_store store{out_.string()};
  auto png = some_png(24, 16);
  auto a = store.store(job_id, 1, png, 24, 16);

  auto on_disk = file_bytes(a.path);
  EXPECT_EQ(a.uri, "file://" + a.path);
  EXPECT_EQ(a.sha256, sha256_hex(on_disk.data(), on_disk.size()));
  EXPECT_EQ(a.bytes, static_cast<std::int64_t>(on_disk.size()));
  EXPECT_EQ(a.bytes, static_cast<std::int64_t>(fs::file_size(a.path)));
  EXPECT_EQ(a.width, 24);
  EXPECT_EQ(a.height, 16);
  EXPECT_EQ(a.mime, "image/png");
}

TEST_F(image_store_test, the_uri_is_percent_encoded) {
  EXPECT_EQ(file_uri("/srv/images/ab/x-1.png"),
            "file:///srv/images/ab/x-1.png");
  EXPECT_EQ(file_uri("/tmp/my images #1 %20?x/caf\xc3\xa9.png"),
            "file:///tmp/my%20images%20%231%20%2520%3Fx/caf%C3%A9.png");
}

TEST_F(image_store_test, a_relative_dir_becomes_absolute_and_normal) {
  const fs::path previous = fs::current_path();
  fs::current_path(root_.path());
  image_store store{"./var//images/../images/"};
  fs::current_path(previous);

  const fs::path expected = fs::canonical(root_.path()) / "var" / "images";
  EXPECT_EQ(store.dir(), expected.string());
  auto a = store.store(job_id, 1, some_png(), 16, 8);
  EXPECT_TRUE(fs::path(a.path).is_absolute()) << a.path;
  EXPECT_EQ(a.uri,
            "file://" + (expected / "3f" / (job_id + "-1.png")).string());
  EXPECT_TRUE(fs::is_regular_file(a.path));
}

TEST_F(image_store_test, storing_again_replaces_the_file_whole) {
  image_store store{out_.string()};
  store.store(job_id, 1, some_png(64, 64), 64, 64);
  auto smaller = some_png(8, 8);
  auto a = store.store(job_id, 1, smaller, 8, 8);
  EXPECT_EQ(file_bytes(a.path), smaller);
  EXPECT_EQ(files_under(out_).size(), 1u);
}

TEST_F(image_store_test, each_attempt_has_its_own_file) {
  // A late attempt must not replace the file an earlier one registered.
  image_store store{out_.string()};
  auto first_png = some_png(16, 8);
  auto second_png = some_png(8, 8);
  auto first = store.store(job_id, 1, first_png, 16, 8);
  auto second = store.store(job_id, 2, second_png, 8, 8);
  EXPECT_NE(first.path, second.path);
  EXPECT_EQ(second.path, (out_ / "3f" / (job_id + "-2.png")).string());
  EXPECT_EQ(file_bytes(first.path), first_png);
  EXPECT_EQ(file_bytes(second.path), second_png);
}

TEST_F(image_store_test, discard_removes_the_file_and_only_that_file) {
  image_store store{out_.string()};
  auto kept = store.store(job_id, 1, some_png(), 16, 8);
  auto discarded = store.store(job_id, 2, some_png(), 16, 8);
  EXPECT_TRUE(discard_image(discarded));
  EXPECT_FALSE(fs::exists(discarded.path));
  EXPECT_TRUE(fs::is_regular_file(kept.path));
  // Already gone is not an error.
  EXPECT_TRUE(discard_image(discarded));
}

TEST_F(image_store_test, discard_leaves_an_artifact_without_a_file_alone) {
  const fs::path bystander = root_.path() / "bystander.png";
  test::write_file(bystander, "x");
  artifact unstored;
  unstored.uri = "null:" + job_id;
  unstored.path = bystander.string();
  EXPECT_TRUE(discard_image(unstored));
  EXPECT_TRUE(fs::exists(bystander));
  EXPECT_TRUE(discard_image(artifact{}));
}

TEST_F(image_store_test, ids_sharing_a_prefix_share_a_shard) {
  image_store store{out_.string()};
  const std::string other = "3f000000-0000-4000-8000-000000000000";
  const std::string elsewhere = "a0000000-0000-4000-8000-000000000000";
  store.store(job_id, 1, some_png(), 16, 8);
  store.store(other, 1, some_png(), 16, 8);
  store.store(elsewhere, 1, some_png(), 16, 8);
  EXPECT_TRUE(fs::is_regular_file(out_ / "3f" / (other + "-1.png")));
  EXPECT_TRUE(fs::is_regular_file(out_ / "a0" / (elsewhere + "-1.png")));
  EXPECT_EQ(files_under(out_).size(), 3u);
}

TEST_F(image_store_test, hostile_job_ids_are_refused_and_write_nothing) {
  image_store store{out_.string()};
  const std::vector<std::string> hostile = {
      "",
      "../../../../tmp/imagen-escape",
      "../" + job_id.substr(3),
      "/etc/passwd",
      "3f/../../../../../../../tmp/x",
      "3fa85f64-5717-4562-b3fc-2c963f66af/6",
      "3fa85f64-5717-4562-b3fc-2c963f66a..",
      "3fa85f64/5717-4562-b3fc-2c963f66afa6",
      "3fa85f64-5717-4562-b3fc-2c963f66afa6/",
      "..",
      std::string{"3fa85f64-5717-4562-b3fc-2c963f66afa\0", 36},
      "3fa85f64-5717-4562-b3fc-2c963f66afa6.png",
      "3fa85f64 5717-4562-b3fc-2c963f66afa6",
      "g3a85f64-5717-4562-b3fc-2c963f66afa6",
  };
  for (const auto& id : hostile) {
    auto error = store_error(store, id);
    EXPECT_NE(error.find("not a canonical UUID"), std::string::npos)
        << "id \"" << id << "\": " << error;
    EXPECT_THROW(store.path_for(id, 1), storage_error) << id;
  }
  EXPECT_EQ(files_under(root_.path()), std::vector<std::string>{});
}

TEST_F(image_store_test, a_refused_id_is_shown_safely_in_the_message) {
  // The message becomes the job's error text: no NUL, no invalid UTF-8,
  // no unbounded length.
  image_store store{out_.string()};
  auto error = store_error(store, std::string{"ab\0\xff/..", 7});
  EXPECT_NE(error.find("\"ab\\x00\\xff/..\""), std::string::npos) << error;
  error = store_error(store, std::string(10000, 'a'));
  EXPECT_LT(error.size(), 200u) << error;
}

TEST_F(image_store_test, canonical_uuids_are_recognised) {
  EXPECT_TRUE(is_canonical_uuid(job_id));
  EXPECT_TRUE(is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
  EXPECT_TRUE(is_canonical_uuid("ABCDEF01-2345-6789-abcd-ef0123456789"));
  EXPECT_FALSE(is_canonical_uuid("3fa85f6457174562b3fc2c963f66afa6"));
  EXPECT_FALSE(is_canonical_uuid("{3fa85f64-5717-4562-b3fc-2c963f66afa6}"));
  EXPECT_FALSE(is_canonical_uuid("3fa85f64-5717-4562-b3fc-2c963f66afa"));
  EXPECT_FALSE(is_canonical_uuid("3fa85f64-5717-4562-b3fc-2c963f66afa6a"));
  EXPECT_FALSE(is_canonical_uuid("3fa85f64-5717-4562-b3fc_2c963f66afa6"));
  EXPECT_FALSE(is_canonical_uuid("3fa85f64-5717-4562-b3fc-2c963f66afaz"));
}

TEST_F(image_store_test,
       an_output_dir_under_a_regular_file_is_a_storage_error) {
  // Works as root too: no permission bit can make a file a directory.
  const fs::path blocker = root_.path() / "not-a-directory";
  test::write_file(blocker, "plain file\n");
  image_store store{(blocker / "images").string()};

  auto error = store_error(store, job_id);
  EXPECT_NE(error.find("cannot create directory"), std::string::npos) << error;
  EXPECT_NE(error.find((blocker / "images" / "3f").string()), std::string::npos)
      << error;
  EXPECT_EQ(test::read_file(blocker), "plain file\n");
}

TEST_F(image_store_test, a_final_name_taken_by_a_directory_fails_cleanly) {
  // rename() cannot replace a directory with a file: the store fails after
  // the temporary file was written, and must remove it again.
  image_store store{out_.string()};
  const fs::path final_path = out_ / "3f" / (job_id + "-1.png");
  fs::create_directories(final_path / "occupied");

  auto error = store_error(store, job_id);
  EXPECT_NE(error.find("cannot rename"), std::string::npos) << error;
  EXPECT_NE(error.find(final_path.string()), std::string::npos) << error;
  EXPECT_EQ(files_under(out_), std::vector<std::string>{});
  EXPECT_TRUE(fs::is_directory(final_path / "occupied"));
}

TEST_F(image_store_test, an_unwritable_shard_is_a_storage_error_as_non_root) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores directory permissions; the regular-file "
                    "test covers this case";
  image_store store{out_.string()};
  fs::create_directories(out_ / "3f");
  fs::permissions(out_ / "3f", fs::perms::owner_read | fs::perms::owner_exec);
  auto error = store_error(store, job_id);
  fs::permissions(out_ / "3f", fs::perms::owner_all);
  EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
  EXPECT_EQ(files_under(out_), std::vector<std::string>{});
}

TEST_F(image_store_test, a_scratch_dir_that_cannot_be_made_fails_the_store) {
  // A crash between write and rename leaves the temporary behind; it must
  // be where sweep_scratch looks, not among the images. A file where the
  // scratch directory should be shows where the store writes it.
  image_store store{out_.string()};
  fs::create_directories(out_);
  std::ofstream(out_ / scratch_subdir) << "in the way";
  EXPECT_EQ(store.scratch_dir(), (out_ / ".tmp").string());

  auto error = store_error(store, job_id);
  EXPECT_NE(error.find("cannot create directory " + store.scratch_dir()),
            std::string::npos)
      << error;
  EXPECT_FALSE(fs::exists(out_ / "3f" / (job_id + "-1.png")));
}

TEST_F(image_store_test, the_temporary_file_is_created_in_the_scratch_dir) {
  // /proc/self is a directory in which nobody, root included, can create
  // a file: the error names the temporary the store tried to create.
  fs::create_directories(out_);
  fs::create_directory_symlink("/proc/self", out_ / ".tmp");
  image_store store{out_.string()};

  auto error = store_error(store, job_id);
  EXPECT_NE(error.find("cannot create " + out_.string() + "/.tmp/" + job_id +
                       ".png.tmp-"),
            std::string::npos)
      << error;
  EXPECT_EQ(files_under(out_ / "3f"), std::vector<std::string>{});
}

TEST_F(image_store_test, a_scratch_dir_on_another_file_system_still_stores) {
  // /dev/shm is a tmpfs of its own on most machines; a .tmp linked there
  // cannot take part in a rename into the shard.
  std::error_code error;
  const fs::path elsewhere =
      fs::path("/dev/shm") / ("imagen-scratch-" + std::to_string(::getpid()));
  fs::create_directories(elsewhere, error);
  struct stat far {
  }, near{};
  fs::create_directories(out_);
  if (error || ::stat(elsewhere.c_str(), &far) != 0 ||
      ::stat(out_.c_str(), &near) != 0 || far.st_dev == near.st_dev) {
    fs::remove_all(elsewhere, error);
    GTEST_SKIP() << "no second file system at /dev/shm";
  }
  fs::create_directory_symlink(elsewhere, out_ / ".tmp");
  image_store store{out_.string()};

  auto png = some_png();
  auto a = store.store(job_id, 1, png, 16, 8);
  auto left = files_under(elsewhere);
  fs::remove_all(elsewhere, error);

  EXPECT_EQ(file_bytes(a.path), png);
  EXPECT_EQ(left, std::vector<std::string>{});
  EXPECT_EQ(files_under(out_ / "3f"),
            std::vector<std::string>{job_id + "-1.png"});
}

TEST_F(image_store_test, sweep_removes_only_files_nobody_wrote_for_long) {
  const fs::path scratch = out_ / ".tmp";
  const fs::path elsewhere = out_ / "keep.png";
  fs::create_directories(scratch / "a-directory");
  for (const auto* name : {"old.png.tmp-1-1", "out-1-2-3.png", "young.png"})
    std::ofstream(scratch / name) << "bytes";
  std::ofstream(elsewhere) << "not in the scratch directory";
  fs::create_symlink(elsewhere, scratch / "a-link");
  const auto two_hours_ago =
      fs::file_time_type::clock::now() - std::chrono::hours(2);
  for (const auto* name : {"old.png.tmp-1-1", "out-1-2-3.png", "a-directory"})
    fs::last_write_time(scratch / name, two_hours_ago);
  fs::last_write_time(elsewhere, two_hours_ago);

  auto swept = sweep_scratch(scratch.string(), std::chrono::hours(1));

  EXPECT_EQ(swept.removed, 2);
  EXPECT_EQ(swept.failed, 0) << swept.first_error;
  EXPECT_FALSE(fs::exists(scratch / "old.png.tmp-1-1"));
  EXPECT_FALSE(fs::exists(scratch / "out-1-2-3.png"));
  EXPECT_TRUE(fs::exists(scratch / "young.png"));
  EXPECT_TRUE(fs::is_directory(scratch / "a-directory"));
  EXPECT_TRUE(fs::is_symlink(scratch / "a-link"));
  EXPECT_TRUE(fs::exists(elsewhere));
}

TEST_F(image_store_test, sweep_leaves_a_scratch_dir_that_is_a_link_alone) {
  // An operator who points output.dir/.tmp at a shared directory (/tmp, a
  // faster disk) must not lose that directory's other old files: the
  // sweep only removes what is in the worker's own scratch directory.
  const fs::path elsewhere = root_.path() / "shared-scratch";
  const fs::path theirs = elsewhere / "someone-elses-report.csv";
  fs::create_directories(elsewhere);
  fs::create_directories(out_);
  std::ofstream(theirs) << "not the worker's";
  fs::last_write_time(theirs,
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  fs::create_directory_symlink(elsewhere, out_ / ".tmp");

  auto swept = sweep_scratch((out_ / ".tmp").string(), std::chrono::hours(1));

  EXPECT_TRUE(fs::exists(theirs));
  EXPECT_EQ(swept.removed, 0);
  EXPECT_EQ(swept.failed, 1);
  EXPECT_NE(swept.first_error.find("symbolic link"), std::string::npos)
      << swept.first_error;
}

TEST_F(image_store_test, sweeping_a_missing_directory_finds_nothing) {
  auto swept =
      sweep_scratch((out_ / "never-made").string(), std::chrono::seconds(0));
  EXPECT_EQ(swept.removed, 0);
  EXPECT_EQ(swept.failed, 0) << swept.first_error;
}

}  // namespace
}  // namespace imagen
