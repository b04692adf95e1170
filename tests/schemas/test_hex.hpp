// Hex for the schemas tests, written independently of schemas/lorawan/types.cpp so that a
// test never checks that code against itself.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lorakeep::test {

inline std::vector<std::uint8_t> unhex(std::string_view hex) {
  auto value = [hex](char c) -> unsigned {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    throw std::invalid_argument("test vector is not hex: " + std::string(hex));
  };
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd hex: " + std::string(hex));
  std::vector<std::uint8_t> out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>((value(hex[i]) << 4U) | value(hex[i + 1])));
  }
  return out;
}

template <class Bytes>
std::string hexof(const Bytes& bytes) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (const auto b : bytes) {
    const auto v = static_cast<unsigned>(static_cast<std::uint8_t>(b));
    out += digits[v >> 4U];
    out += digits[v & 0x0FU];
  }
  return out;
}

inline std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

}  // namespace lorakeep::test
