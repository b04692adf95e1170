// The configured token, as lorakeep-cs opens it: the module with its environment and
// C_Initialize string, the token by label/serial/slot, the user PIN from pin_file or
// LORAKEEP_PIN. Started as root, the work runs in a child process that has dropped to
// appliance.user first, so that the token files it writes stay that user's (lorakeep-cs
// must still be able to read a KEK imported by root).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "appliance/keys.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/session.hpp"
#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {

struct TokenSession {
  const appliance::server::Config& config;
  pkcs11::Module& module;
  pkcs11::TokenInfo token;
  pkcs11::Session& session;
  appliance::Policy policy;
  /// What the parent writes into the registry's audit record once the work succeeded.
  std::string audit_detail;
  /// With TokenJob::create_token: the token was initialized by this run (else it existed).
  bool token_created = false;
};

struct TokenJob {
  /// Log in as the security officer (creating CKA_TRUSTED keys with trusted_keks).
  bool security_officer = false;
  /// The SO PIN file (--so-pin-file); else LORAKEEP_SO_PIN.
  std::optional<std::filesystem::path> so_pin_file;
  /// Initialize the configured token first when no token has its label (C_InitToken on a
  /// free slot with the SO PIN, then C_InitPIN with the user PIN of lorakeep.yml). The
  /// work then runs on a user session.
  bool create_token = false;
};

/// The job of a command that creates a storage key or KEK: with appliance.trusted_keks and
/// an SO PIN given (--so-pin-file or LORAKEEP_SO_PIN), a security-officer session, which
/// SoftHSMv2 requires for CKA_TRUSTED; else the user's (NSS softoken lets the user set it).
TokenJob trusted_key_job(Context& ctx, const std::string& so_pin_file);

/// Runs `work` on a logged-in session of the configured token and returns its exit code.
/// `work` prints the command's output itself. Every exception is reported as main would
/// (report_current_exception). `audit_detail` receives TokenSession::audit_detail.
int run_on_token(Context& ctx, const TokenJob& job, const std::function<int(TokenSession&)>& work,
                 std::string& audit_detail);

/// A secret-key object whose label starts "lorakeep/".
struct KeyObject {
  std::string label;                       // the full label
  std::optional<appliance::KeyRole> role;  // from the prefix; none for an unknown one
  std::string name;                        // the label without its role's prefix
  pkcs11::KeyAttributes attributes;
  std::optional<std::string> policy_problem;  // check_policy's message when it fails
};

/// Every lorakeep key object in the token, in label order.
std::vector<KeyObject> list_key_objects(TokenSession& t);

std::string_view role_name(appliance::KeyRole role) noexcept;
/// "sensitive never-extractable wrap" — the attributes that matter to the policy.
std::string describe_flags(const pkcs11::KeyAttributes& a);

/// Checks, before the token is touched, that the audit record can be written later: the
/// join_server section (when there is one) parses. Throws CtlError.
void prepare_token_audit(Context& ctx);

/// Writes the audit record of a token command when lorakeep.yml has a join_server section;
/// else says on stderr that none was kept. A failure is reported with exit code failure.
int audit_token_action(Context& ctx, int code, const std::string& action,
                       const std::string& subject, const std::string& detail);

}  // namespace lorakeep::ctl
