#include "core/generation_pipeline.hpp"

#include <exception>
#include <utility>

#include "core/log.hpp"
#include "core/png.hpp"
#include "core/sha256.hpp"
#include "core/validation.hpp"

namespace imagen {

namespace {

using clock = std::chrono::steady_clock;

constexpr const char* png_mime = "image/png";

std::int64_t elapsed_ms(clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() -
                                                               start)
      .count();
}

/// The artifact of a backend that stores nothing: its bytes are known,
/// no file exists, and the uri says so.
artifact unstored_artifact(const job& j, const generation& g) {
  artifact a;
  a.uri = "null:" + j.id;
  a.sha256 =
      g.sha256.empty() ? sha256_hex(g.png.data(), g.png.size()) : g.sha256;
  a.bytes = static_cast<std::int64_t>(g.png.size());
  a.width = g.width;
  a.height = g.height;
  a.mime = png_mime;
  return a;
}

}  // namespace

generation_pipeline::generation_pipeline(
    pipeline_settings settings,
    std::map<std::string, std::shared_ptr<backend>> backends)
    : settings_(std::move(settings)),
      backends_(std::move(backends)),
      store_(settings_.output_dir) {
  for (const auto& entry : backends_)
    if (entry.second)
      names_.insert(entry.first);
}

outcome generation_pipeline::run(const job& j, const slot_context& where) {
  const auto start = clock::now();

  if (auto error =
          validate(j, settings_.limits, names_, settings_.default_backend))
    return failure(j, failure_kind::invalid_input, *error, elapsed_ms(start));
  const std::string& name =
      j.backend.empty() ? settings_.default_backend : j.backend;
  backend& chosen = *backends_.at(name);

  const auto deadline =
      start + chosen.timeout().value_or(settings_.job_timeout);
  generation image;
  try {
    image = chosen.generate(j, where, deadline);
  } catch (const backend_error& e) {
    return failure(j, e.kind(), e.what(), elapsed_ms(start));
  } catch (const std::exception& e) {
    // A backend that throws something else still failed this attempt
    // only; the slot itself is fine.
    return failure(j, failure_kind::backend,
                   "backend " + name + " failed: " + e.what(),
                   elapsed_ms(start));
  }

  // A success without a decodable PNG is a failure, whatever the backend
  // claims; the dimensions recorded are the decoded ones. A backend that
  // encoded the image itself, or decoded it already, says so.
  if (!image.size_verified) {
    auto info = inspect_png(image.png);
    if (!info)
      return failure(j, failure_kind::backend, "pipeline produced no image",
                     elapsed_ms(start));
    image.width = info->width;
    image.height = info->height;
  }

  artifact stored;
  try {
    stored = chosen.stores_images() ? store_.store(j.id, j.attempt, image.png,
                                                   image.width, image.height)
                                    : unstored_artifact(j, image);
  } catch (const storage_error& e) {
    return failure(j, failure_kind::storage, e.what(), elapsed_ms(start));
  } catch (const std::exception& e) {
    return failure(j, failure_kind::storage,
                   std::string{"cannot store the image: "} + e.what(),
                   elapsed_ms(start));
  }

  auto ms = elapsed_ms(start);
  log::debug(
      "pipeline.generated",
      {{"job", j.id}, {"backend", name}, {"bytes", stored.bytes}, {"ms", ms}});
  return success(j, std::move(stored), ms);
}

}  // namespace imagen
