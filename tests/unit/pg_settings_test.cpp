// The password scrubber of core/pg_settings without a database: what
// redact_url prints of a setting, and what scrub_secrets leaves of a
// message about it. tests/pg/connection_test.cpp checks the messages
// libpq itself produces.
#include <string>

#include <gtest/gtest.h>

#include "core/pg_settings.hpp"

namespace imagen {
namespace {

bool shows(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// libpq knows only "password" and refuses "PASSWORD" as an unknown
// option; the setting is still printed in the error, so its value must
// be masked whatever the case of the keyword.
TEST(redact_url, MasksAPasswordKeywordInAnyCase) {
  EXPECT_EQ(redact_url("host=127.0.0.1 port=1 PASSWORD=S3CRET"),
            "host=127.0.0.1 port=1 PASSWORD=***");
  EXPECT_EQ(redact_url("host=db Password = 'S3 CRET' SSLPassword=K3Y"),
            "host=db Password = *** SSLPassword=***");
  EXPECT_EQ(redact_url("postgresql://u@db/x?PASSWORD=S3CRET&sslmode=off"),
            "postgresql://u@db/x?PASSWORD=***&sslmode=off");
  EXPECT_EQ(redact_url("postgres://u@db/x?SslPassWord=K3Y"),
            "postgres://u@db/x?SslPassWord=***");
  // libpq decodes a parameter's name: this one is a valid "password".
  EXPECT_EQ(redact_url("postgresql://u@db/x?pass%77ord=S3CRET"),
            "postgresql://u@db/x?pass%77ord=***");
  // Userinfo has no keyword; it stays masked.
  EXPECT_EQ(redact_url("postgresql://U:S3CRET@db/x"),
            "postgresql://U:***@db/x");
  // Keys that only contain the word are not secrets.
  EXPECT_EQ(redact_url("host=db password_hint=x"), "host=db password_hint=x");
}

TEST(scrub_secrets, MasksTheValueOfAPasswordKeywordInAnyCase) {
  for (const std::string url : {
           "host=127.0.0.1 port=1 PASSWORD=S3CRET-pw",
           "host=127.0.0.1 port=1 PaSsWoRd='S3CRET-pw'",
           "postgresql://u@127.0.0.1:1/x?PASSWORD=S3CRET-pw",
           "postgresql://u@127.0.0.1:1/x?PASSWORD=S3CRET%2Dpw",
       }) {
    SCOPED_TRACE(url);
    // The setting quoted whole, and its value quoted alone.
    auto masked = scrub_secrets(
        url, "invalid option in \"" + url + "\"; the value was \"S3CRET-pw\"");
    EXPECT_FALSE(shows(masked, "S3CRET")) << masked;
    EXPECT_TRUE(shows(masked, "127.0.0.1")) << masked;
  }
}

}  // namespace
}  // namespace imagen
