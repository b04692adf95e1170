#include <doctest.h>

#include <set>
#include <string>

#include "schemas/result.hpp"

using lorakeep::fail;
using lorakeep::Failure;
using lorakeep::Ok;
using lorakeep::Result;
using lorakeep::Status;
using lorakeep::status_name;

TEST_SUITE("schemas") {
  TEST_CASE("status_name names every status, each differently") {
    CHECK(status_name(Status::ok) == "ok");
    CHECK(status_name(Status::malformed) == "malformed");
    CHECK(status_name(Status::mic_failed) == "mic_failed");
    CHECK(status_name(Status::unknown_key) == "unknown_key");
    CHECK(status_name(Status::key_policy) == "key_policy");
    CHECK(status_name(Status::token_unavailable) == "token_unavailable");
    CHECK(status_name(Status::deadline) == "deadline");
    CHECK(status_name(Status::exhausted) == "exhausted");
    CHECK(status_name(Status::internal) == "internal");

    std::set<std::string> names;
    for (unsigned v = 0; v <= static_cast<unsigned>(Status::internal); ++v) {
      names.emplace(status_name(static_cast<Status>(v)));
    }
    CHECK(names.size() == static_cast<std::size_t>(Status::internal) + 1);
  }

  TEST_CASE("status_name of a value outside the enumeration") {
    CHECK(status_name(static_cast<Status>(200)) == "unknown");
  }

  TEST_CASE("Result holds a value or a Failure") {
    const Result<int> good = 7;
    REQUIRE(good.ok());
    CHECK(static_cast<bool>(good));
    CHECK(*good == 7);

    const Result<int> bad = fail(Status::malformed, "no");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.failure().status == Status::malformed);
    CHECK(bad.failure().message == "no");

    const Result<Ok> done = Ok{};
    CHECK(done.ok());
    const Failure f{};
    CHECK(f.status == Status::internal);
  }
}
