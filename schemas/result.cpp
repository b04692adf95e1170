#include "schemas/result.hpp"

namespace lorakeep {

std::string_view status_name(Status s) noexcept {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::malformed:
      return "malformed";
    case Status::mic_failed:
      return "mic_failed";
    case Status::unknown_key:
      return "unknown_key";
    case Status::key_policy:
      return "key_policy";
    case Status::token_unavailable:
      return "token_unavailable";
    case Status::deadline:
      return "deadline";
    case Status::exhausted:
      return "exhausted";
    case Status::internal:
      return "internal";
  }
  // A value cast from outside the enumeration (a corrupt message, a bug).
  return "unknown";
}

}  // namespace lorakeep
