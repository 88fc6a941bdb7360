#include "core/sha256.hpp"

#include <stdexcept>

#include <openssl/evp.h>

namespace imagen {

std::string sha256_hex(const std::uint8_t* data, std::size_t n) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data, n, digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256 of " + std::to_string(n) +
                             " bytes failed in OpenSSL");
  static constexpr char hex[] = "0123456789abcdef";
  std::string text;
  text.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    text += hex[digest[i] >> 4];
    text += hex[digest[i] & 0x0f];
  }
  return text;
}

}  // namespace imagen
