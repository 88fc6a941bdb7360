#include "tests/support/worker_env.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>

#include <gtest/gtest.h>

#include "core/png.hpp"
#include "core/sha256.hpp"

namespace imagen::test {

namespace fs = std::filesystem;

namespace {

constexpr const char* select_jobs =
    "SELECT id, status, attempt, width, height, image_id, error, "
    "jsonb_array_length(errors) FROM imagen.jobs ORDER BY created_at, id";

constexpr const char* select_job =
    "SELECT id, status, attempt, width, height, image_id, error, "
    "jsonb_array_length(errors) FROM imagen.jobs WHERE id = $1";

constexpr const char* select_images =
    "SELECT id, job_id, owner_user_id, uri, sha256, bytes, width, height, "
    "mime FROM imagen.images ORDER BY job_id";

constexpr const char* insert_web_job =
    "INSERT INTO imagen.jobs (owner_user_id, prompt) VALUES ($1, $2) "
    "RETURNING id";

constexpr const char* insert_many_jobs =
    "INSERT INTO imagen.jobs (owner_user_id, prompt, backend, width, height, "
    "seed) SELECT 'user-' || (i % 7), 'job number ' || i, NULLIF($2, ''), "
    "$3::int, $3::int, i FROM generate_series(1, $1::int) AS i RETURNING id";

constexpr const char* count_status =
    "SELECT count(*) FROM imagen.jobs WHERE status = $1";

std::optional<int> optional_int(const std::optional<std::string>& text) {
  if (!text)
    return std::nullopt;
  return std::stoi(*text);
}

job_row to_job_row(const row& r) {
  job_row result;
  result.id = r.at(0).value_or("");
  result.status = r.at(1).value_or("");
  result.attempt = std::stoi(r.at(2).value_or("0"));
  result.width = optional_int(r.at(3));
  result.height = optional_int(r.at(4));
  result.image_id = r.at(5);
  result.error = r.at(6);
  result.error_entries = std::stoi(r.at(7).value_or("0"));
  return result;
}

}  // namespace

png_file inspect_png_file(const fs::path& path) {
  png_file result;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return result;
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  result.bytes = static_cast<std::int64_t>(bytes.size());
  result.sha256 = sha256_hex(bytes.data(), bytes.size());
  if (auto info = inspect_png(bytes)) {
    result.valid = true;
    result.width = info->width;
    result.height = info->height;
  }
  return result;
}

void write_png(const fs::path& path, int width, int height) {
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(width) * height * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = static_cast<std::uint8_t>(i * 7);
  auto png = encode_png(width, height, rgb);
  write_file(path, std::string(png.begin(), png.end()));
}

std::string backend_script(const std::string& name) {
  return (fs::path(IMAGEN_SOURCE_DIR) / "tests" / "backends" / name).string();
}

std::string command_backend_toml(
    const std::string& name, const std::vector<std::string>& argv,
    const std::string& timeout, const std::map<std::string, std::string>& env) {
  auto literal = [](const std::string& text) {
    if (text.find('\'') != std::string::npos)
      throw std::invalid_argument("a TOML literal cannot hold ' : " + text);
    return "'" + text + "'";
  };
  std::string toml = "[backends." + name + "]\nkind = \"command\"\nargv = [";
  for (std::size_t i = 0; i < argv.size(); ++i)
    toml += (i == 0 ? "" : ", ") + literal(argv[i]);
  toml += "]\ntimeout = \"" + timeout + "\"\n";
  if (!env.empty()) {
    toml += "env = { ";
    bool first = true;
    for (const auto& [key, value] : env) {
      toml += (first ? "" : ", ") + key + " = " + literal(value);
      first = false;
    }
    toml += " }\n";
  }
  return toml + "\n";
}

std::string slow_backend_toml(const std::string& name,
                              const std::string& seconds, const fs::path& png) {
  // The PNG's path is part of the command line, so a test can find the
  // backend's processes by it.
  return command_backend_toml(
      name,
      {"/bin/sh", "-c",
       "sleep " + seconds + "; cp \"" + png.string() + "\" \"$0\"", "{output}"},
      "60s");
}

worker_env::worker_env(scratch_database::schema schema)
    : db_(schema), dir_("imagen-e2e") {}

env_changes worker_env::env(const env_changes& extra) const {
  env_changes result{
      {"IMAGEN_DATABASE_URL", url()},
      {"IMAGEN_OUTPUT_DIR", output_dir().string()},
      {"IMAGEN_POOL_SIZE", "2"},
      {"IMAGEN_WORKER_POLL_INTERVAL", "200ms"},
      {"IMAGEN_WORKER_RETRY_BASE", "50ms"},
  };
  for (const auto& [name, value] : extra)
    result[name] = value;
  return result;
}

std::string worker_env::write_config(const std::string& name,
                                     const std::string& toml) const {
  auto path = dir() / name;
  write_file(path, toml);
  return path.string();
}

std::string worker_env::insert_job(const std::string& prompt,
                                   const std::string& owner) const {
  return scalar(url(), insert_web_job, {owner, prompt});
}

std::vector<std::string> worker_env::insert_jobs(int count,
                                                 const std::string& backend,
                                                 int size) const {
  std::vector<std::string> ids;
  for (const auto& r :
       query(url(), insert_many_jobs,
             {std::to_string(count), backend, std::to_string(size)}))
    ids.push_back(r.at(0).value_or(""));
  return ids;
}

std::vector<job_row> worker_env::jobs() const {
  std::vector<job_row> result;
  for (const auto& r : query(url(), select_jobs))
    result.push_back(to_job_row(r));
  return result;
}

job_row worker_env::job(const std::string& id) const {
  auto rows = query(url(), select_job, {id});
  if (rows.empty())
    throw std::runtime_error("no job " + id);
  return to_job_row(rows.front());
}

std::vector<image_row> worker_env::images() const {
  std::vector<image_row> result;
  for (const auto& r : query(url(), select_images)) {
    image_row image;
    image.id = r.at(0).value_or("");
    image.job_id = r.at(1).value_or("");
    image.owner_user_id = r.at(2).value_or("");
    image.uri = r.at(3).value_or("");
    image.sha256 = r.at(4).value_or("");
    image.bytes = std::stoll(r.at(5).value_or("-1"));
    image.width = std::stoi(r.at(6).value_or("-1"));
    image.height = std::stoi(r.at(7).value_or("-1"));
    image.mime = r.at(8).value_or("");
    result.push_back(image);
  }
  return result;
}

std::int64_t worker_env::count(const std::string& status) const {
  return std::stoll(scalar(url(), count_status, {status}));
}

std::string percent_decoded(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

void expect_image_matches_file(const image_row& image,
                               const fs::path& output_dir) {
  const std::string scheme = "file://";
  ASSERT_EQ(image.uri.rfind(scheme, 0), 0u)
      << "image " << image.id << " uri " << image.uri;
  fs::path path = percent_decoded(image.uri.substr(scheme.size()));
  EXPECT_TRUE(path.is_absolute()) << path;

  // The file must lie inside the output directory, whatever the job was.
  auto root = fs::weakly_canonical(output_dir).string() + "/";
  auto where = fs::weakly_canonical(path).string();
  EXPECT_EQ(where.rfind(root, 0), 0u) << where << " is outside " << root;
  // One file per attempt: `<job id>-<attempt>.png` (core/image_store.hpp).
  EXPECT_TRUE(std::regex_match(path.filename().string(),
                               std::regex(image.job_id + "-[1-9][0-9]*\\.png")))
      << path;

  auto file = inspect_png_file(path);
  ASSERT_TRUE(file.valid) << path << " is not a valid PNG";
  EXPECT_EQ(file.sha256, image.sha256) << path;
  EXPECT_EQ(file.bytes, image.bytes) << path;
  EXPECT_EQ(file.width, image.width) << path;
  EXPECT_EQ(file.height, image.height) << path;
  EXPECT_EQ(image.mime, "image/png");
}

std::vector<fs::path> png_files_under(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && it->path().filename().string()[0] == '.') {
      it.disable_recursion_pending();
      continue;
    }
    if (it->path().extension() == ".png" && it->is_regular_file(ec))
      found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace imagen::test
