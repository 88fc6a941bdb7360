#include "core/pg_settings.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <libpq-fe.h>

namespace imagen {

namespace {

constexpr const char* redacted = "***";

bool is_url(const std::string& text) {
  return text.rfind("postgresql://", 0) == 0 ||
         text.rfind("postgres://", 0) == 0;
}

// Decodes %XX escapes; anything else, a malformed escape included, is
// kept as it is.
std::string percent_decoded(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// Whether a keyword names a secret: it ends in "password" (password,
// sslpassword) in any case. libpq knows only the lower-case keywords and
// refuses "PASSWORD", but its message comes with the value we print.
bool names_password(const std::string& key) {
  constexpr std::string_view suffix = "password";
  if (key.size() < suffix.size()) {
    return false;
  }
  return std::equal(suffix.begin(), suffix.end(), key.end() - suffix.size(),
                    [](char lower, char c) {
                      return std::tolower(static_cast<unsigned char>(c)) ==
                             lower;
                    });
}

// Hides the value of every query parameter whose key names a password;
// the key is compared decoded, as libpq decodes it. Adds the hidden
// values, as written, to `secrets`.
std::string redact_query(const std::string& query,
                         std::vector<std::string>& secrets) {
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
    if (eq != std::string::npos && names_password(percent_decoded(key))) {
      secrets.push_back(item.substr(eq + 1));
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

// The userinfo of a URL ends at its last '@': a password may hold '/',
// '?' or '@' that a stricter parse would take for the end of the
// authority, and masking too much is the safe mistake.
std::string redact_uri(const std::string& url,
                       std::vector<std::string>& secrets) {
  auto authority = url.find("://") + 3;
  auto at = url.rfind('@');
  if (at != std::string::npos && at < authority) {
    at = std::string::npos;
  }
  auto authority_end =
      url.find_first_of("/?", at == std::string::npos ? authority : at);
  if (authority_end == std::string::npos) {
    authority_end = url.size();
  }
  std::string out = url.substr(0, authority);
  if (at != std::string::npos) {
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
         redact_query(url.substr(query + 1), secrets);
}

// The password of a URL or conninfo as libpq reads it; empty when it
// names none or cannot be parsed.
std::string parsed_password(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (error != nullptr) {
    PQfreemem(error);
  }
  std::string password;
  for (auto* o = options; o != nullptr && o->keyword != nullptr; ++o) {
    if (o->val != nullptr && std::strcmp(o->keyword, "password") == 0) {
      password = o->val;
    }
  }
  PQconninfoFree(options);
  return password;
}

void replace_all(std::string& text, const std::string& what,
                 const std::string& with) {
  if (what.empty()) {
    return;
  }
  for (auto at = text.find(what); at != std::string::npos;
       at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

// key = value pairs; a value is a word or a single-quoted string with
// backslash escapes. Adds the hidden values, as written, to `secrets`.
std::string redact_conninfo(const std::string& info,
                            std::vector<std::string>& secrets) {
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
    auto value = info.substr(value_start, i - value_start);
    if (names_password(key)) {
      secrets.push_back(value);
      out += redacted;
    } else {
      out += value;
    }
  }
  return out;
}

std::string redact(const std::string& url, std::vector<std::string>& secrets) {
  return is_url(url) ? redact_uri(url, secrets) : redact_conninfo(url, secrets);
}

// What a message about `url` might quote of its password: the one libpq
// parsed (whatever its length), the raw password of the userinfo, its
// decoded form, the pieces a parser that split it at '@', '/', '?' or '%'
// would show, and the value of every password keyword or parameter, in
// any case, as written, decoded and unquoted. Short pieces are left out:
// masking every "a" would make messages unreadable.
std::vector<std::string> secret_pieces(const std::string& url) {
  std::vector<std::string> pieces;
  auto add = [&](const std::string& piece) {
    if (piece.size() >= 4) {
      pieces.push_back(piece);
    }
  };
  auto parsed = parsed_password(url);
  if (!parsed.empty()) {
    pieces.push_back(parsed);
  }
  if (is_url(url)) {
    auto authority = url.find("://") + 3;
    auto at = url.rfind('@');
    auto colon = url.find(':', authority);
    if (at != std::string::npos && at > authority && colon < at) {
      auto raw = url.substr(colon + 1, at - colon - 1);
      add(raw);
      add(percent_decoded(raw));
      std::size_t start = 0;
      for (std::size_t i = 0; i <= raw.size(); ++i) {
        if (i == raw.size() || std::strchr("@/?%", raw[i]) != nullptr) {
          add(raw.substr(start, i - start));
          start = i + 1;
        }
      }
    }
  }
  std::vector<std::string> values;
  redact(url, values);
  for (const auto& value : values) {
    add(value);
    add(percent_decoded(value));
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      std::string unquoted;
      for (std::size_t i = 1; i + 1 < value.size(); ++i) {
        if (value[i] == '\\' && i + 2 < value.size()) {
          ++i;
        }
        unquoted += value[i];
      }
      add(unquoted);
    }
  }
  // Longest first, so that a piece never leaves part of a longer one.
  std::sort(pieces.begin(), pieces.end(),
            [](const std::string& a, const std::string& b) {
              return a.size() > b.size();
            });
  return pieces;
}

}  // namespace

std::string redact_url(const std::string& url) {
  std::vector<std::string> ignored;
  return redact(url, ignored);
}

std::string scrub_secrets(const std::string& url, std::string message) {
  if (url.empty()) {
    return message;
  }
  // libpq quotes a URL it cannot parse whole.
  replace_all(message, url, redact_url(url));
  for (const auto& piece : secret_pieces(url)) {
    replace_all(message, piece, redacted);
  }
  return message;
}

std::optional<std::string> conninfo_problem(const std::string& url) {
  // Like libpq's expansion of dbname: text that is neither a URL nor
  // holds a '=' is a plain database name, and any name is valid.
  if (!is_url(url) && url.find('=') == std::string::npos) {
    return std::nullopt;
  }
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options != nullptr) {
    PQconninfoFree(options);
    return std::nullopt;
  }
  // No message: libpq ran out of memory, which says nothing about `url`.
  if (error == nullptr) {
    return std::nullopt;
  }
  std::string message = error;
  PQfreemem(error);
  while (!message.empty() &&
         std::isspace(static_cast<unsigned char>(message.back()))) {
    message.pop_back();
  }
  return scrub_secrets(url, message);
}

}  // namespace imagen
