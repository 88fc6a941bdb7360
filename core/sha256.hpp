// SHA-256 through OpenSSL, as lower-case hex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace imagen {

std::string sha256_hex(const std::uint8_t* data, std::size_t n);

}  // namespace imagen
