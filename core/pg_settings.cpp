#include "core/pg_settings.hpp"

#include <cctype>
#include <string>

namespace imagen {

namespace {

constexpr const char* redacted = "***";

bool is_url(const std::string& text) {
  return text.rfind("postgresql://", 0) == 0 ||
         text.rfind("postgres://", 0) == 0;
}

// Hides the value of every query parameter whose key ends in "password"
// (password, sslpassword).
std::string redact_query(const std::string& query) {
  std::string out;
  std::size_t pos = 0;
  while (pos <= query.size()) {
    auto end = query.find('&', pos);
    if (end == std::string::npos) {
      end = query.size();
    }
    auto item = query.substr(pos, end - pos);
    auto eq = item.find('=');
    auto key = item.substr(0, eq);
    if (eq != std::string::npos && key.size() >= 8 &&
        key.compare(key.size() - 8, 8, "password") == 0) {
      item = key + "=" + redacted;
    }
    out += item;
    if (end < query.size()) {
      out += '&';
    }
    pos = end + 1;
  }
  return out;
}

std::string redact_uri(const std::string& url) {
  auto authority = url.find("://") + 3;
  auto authority_end = url.find_first_of("/?", authority);
  if (authority_end == std::string::npos) {
    authority_end = url.size();
  }
  std::string out = url.substr(0, authority);
  auto at = url.rfind('@', authority_end);
  if (at != std::string::npos && at >= authority) {
    auto colon = url.find(':', authority);
    if (colon != std::string::npos && colon < at) {
      out += url.substr(authority, colon + 1 - authority) + redacted;
    } else {
      out += url.substr(authority, at - authority);
    }
    out += url.substr(at, authority_end - at);
  } else {
    out += url.substr(authority, authority_end - authority);
  }
  auto query = url.find('?', authority_end);
  if (query == std::string::npos) {
    return out + url.substr(authority_end);
  }
  return out + url.substr(authority_end, query + 1 - authority_end) +
         redact_query(url.substr(query + 1));
}

// key = value pairs; a value is a word or a single-quoted string with
// backslash escapes.
std::string redact_conninfo(const std::string& info) {
  std::string out;
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < info.size() && std::isspace(static_cast<unsigned char>(info[i])))
      out += info[i++];
  };
  while (i < info.size()) {
    skip_space();
    auto key_start = i;
    while (i < info.size() && info[i] != '=' &&
           !std::isspace(static_cast<unsigned char>(info[i]))) {
      ++i;
    }
    auto key = info.substr(key_start, i - key_start);
    out += key;
    skip_space();
    if (i >= info.size() || info[i] != '=') {
      continue;
    }
    out += info[i++];
    skip_space();
    auto value_start = i;
    if (i < info.size() && info[i] == '\'') {
      ++i;
      while (i < info.size() && info[i] != '\'') {
        i += info[i] == '\\' ? 2 : 1;
      }
      i = i < info.size() ? i + 1 : info.size();
    } else {
      while (i < info.size() &&
             !std::isspace(static_cast<unsigned char>(info[i]))) {
        i += info[i] == '\\' ? 2 : 1;
      }
      i = i < info.size() ? i : info.size();
    }
    bool secret =
        key.size() >= 8 && key.compare(key.size() - 8, 8, "password") == 0;
    out += secret ? std::string(redacted)
                  : info.substr(value_start, i - value_start);
  }
  return out;
}

}  // namespace

std::string redact_url(const std::string& url) {
  return is_url(url) ? redact_uri(url) : redact_conninfo(url);
}

}  // namespace imagen
