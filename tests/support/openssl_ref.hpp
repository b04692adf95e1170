// OpenSSL as an independent reference in tests: the code under test does its crypto in
// the token; these compute the same things with a library nobody here wrote.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace lorakeep::test::ref {

using Bytes = std::vector<std::uint8_t>;

Bytes aes_ecb_encrypt(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
Bytes aes_ecb_decrypt(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
std::array<std::uint8_t, 16> aes_cmac(std::span<const std::uint8_t> key,
                                      std::span<const std::uint8_t> data);
/// RFC 3394 wrap/unwrap; unwrap throws std::runtime_error when the integrity check fails.
Bytes aes_key_wrap(std::span<const std::uint8_t> kek, std::span<const std::uint8_t> key);
Bytes aes_key_unwrap(std::span<const std::uint8_t> kek, std::span<const std::uint8_t> wrapped);

}  // namespace lorakeep::test::ref
