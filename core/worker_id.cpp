#include "core/worker_id.hpp"

#include <unistd.h>
#include <cstdio>
#include <random>
#include <string>

namespace imagen {

std::string make_worker_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "unknown-host");
  }

  std::random_device random;
  std::uniform_int_distribution<unsigned> suffix(0, 0xffffff);
  char tail[8];
  std::snprintf(tail, sizeof(tail), "%06x", suffix(random));

  return printable_host(host) + ":" + std::to_string(::getpid()) + ":" + tail;
}

std::string printable_host(const std::string& host) {
  std::string shown = host;
  for (char& c : shown) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e)
      c = '_';
  }
  return shown;
}

}  // namespace imagen
