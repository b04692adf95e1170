// SecretBytes: zeroizing, constant-time comparison, and reading secrets from files.
#include <doctest.h>

#include <array>
#include <fstream>
#include <string>

#include "pkcs11/secret.hpp"
#include "token_fixture.hpp"

using namespace lorakeep;
using lorakeep::pkcs11::SecretBytes;

namespace {

std::string write_file(const test::TempDir& dir, const std::string& name,
                       const std::string& content) {
  const auto path = dir.path() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

std::string text(const SecretBytes& s) {
  const auto b = s.reveal();
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

TEST_CASE("secure_zero clears memory") {
  std::array<std::uint8_t, 8> buf{1, 2, 3, 4, 5, 6, 7, 8};
  pkcs11::secure_zero(buf.data(), buf.size());
  CHECK(buf == std::array<std::uint8_t, 8>{});
  pkcs11::secure_zero(nullptr, 0);
}

TEST_CASE("constant_time_equal") {
  const std::array<std::uint8_t, 3> a{1, 2, 3};
  const std::array<std::uint8_t, 3> b{1, 2, 3};
  const std::array<std::uint8_t, 3> c{1, 2, 4};
  const std::array<std::uint8_t, 2> d{1, 2};
  CHECK(pkcs11::constant_time_equal(a, b));
  CHECK_FALSE(pkcs11::constant_time_equal(a, c));
  CHECK_FALSE(pkcs11::constant_time_equal(a, d));
  CHECK(pkcs11::constant_time_equal({}, {}));
}

TEST_CASE("SecretBytes: move, clone, clear, equality") {
  SecretBytes a = SecretBytes::from_string("1234");
  CHECK(a.size() == 4);
  const SecretBytes copy = a.clone();
  CHECK(copy == a);
  SecretBytes b = std::move(a);
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  CHECK(b == copy);
  b = SecretBytes::from_string("abcd");
  CHECK_FALSE(b == copy);
  b.clear();
  CHECK(b.empty());
  CHECK(SecretBytes() == SecretBytes());
}

TEST_CASE("SecretBytes::from_file drops exactly one trailing newline") {
  const test::TempDir dir;
  CHECK(text(SecretBytes::from_file(write_file(dir, "a", "1234").c_str())) == "1234");
  CHECK(text(SecretBytes::from_file(write_file(dir, "b", "1234\n").c_str())) == "1234");
  CHECK(text(SecretBytes::from_file(write_file(dir, "c", "1234\r\n").c_str())) == "1234");
  CHECK(text(SecretBytes::from_file(write_file(dir, "d", "1234\n\n").c_str())) == "1234\n");
  CHECK(text(SecretBytes::from_file(write_file(dir, "e", " 12 34 ").c_str())) == " 12 34 ");
  const std::string binary("\x00\x01\xff", 3);
  CHECK(SecretBytes::from_file(write_file(dir, "f", binary).c_str()).size() == 3);
}

TEST_CASE("SecretBytes::from_file errors name the file, never the content") {
  const test::TempDir dir;
  const auto check_error = [](const std::string& path, const std::string& secret) {
    try {
      (void)SecretBytes::from_file(path.c_str());
      FAIL("read an unusable secret file");
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      CHECK(what.find(path) != std::string::npos);
      if (!secret.empty()) CHECK(what.find(secret) == std::string::npos);
    }
  };
  check_error((dir.path() / "missing").string(), "");
  check_error(write_file(dir, "empty", ""), "");
  check_error(write_file(dir, "newline", "\n"), "");
  check_error(write_file(dir, "crlf", "\r\n"), "");
  check_error(write_file(dir, "big", std::string(5000, 'S') + "secretmarker"), "secretmarker");
  check_error(dir.path().string(), "");  // a directory
}
