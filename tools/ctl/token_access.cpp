#include "tools/ctl/token_access.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <utility>

#include "appliance/server/hardening.hpp"
#include "appliance/server/secrets.hpp"
#include "pkcs11/error.hpp"

namespace lorakeep::ctl {
namespace server = appliance::server;

namespace {

/// A secret from the environment, its bytes wiped there and the variable removed.
std::optional<pkcs11::SecretBytes> take_env(const char* name) {
  char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  const std::size_t n = std::strlen(value);
  std::size_t used = n;
  if (used > 0 && value[used - 1] == '\n') --used;
  std::optional<pkcs11::SecretBytes> out;
  if (used > 0) out.emplace(std::span(reinterpret_cast<const std::uint8_t*>(value), used));
  pkcs11::secure_zero(value, n);
  ::unsetenv(name);
  return out;
}

pkcs11::SecretBytes user_pin(const server::Config& config) {
  if (config.pkcs11.pin_file) {
    try {
      return server::read_secret_file(*config.pkcs11.pin_file, "appliance.pkcs11.pin_file");
    } catch (const server::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  if (auto pin = take_env("LORAKEEP_PIN")) return std::move(*pin);
  throw CtlError(Exit::usage,
                 "appliance.pkcs11.pin_file: no user PIN: set pin_file or the LORAKEEP_PIN "
                 "variable");
}

pkcs11::SecretBytes so_pin(const TokenJob& job) {
  if (job.so_pin_file) {
    try {
      return server::read_secret_file(*job.so_pin_file, "--so-pin-file");
    } catch (const server::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  if (auto pin = take_env("LORAKEEP_SO_PIN")) return std::move(*pin);
  throw CtlError(Exit::usage,
                 "no security officer PIN: give --so-pin-file FILE or set "
                 "LORAKEEP_SO_PIN");
}

/// Initializes the configured token unless one with its label is there: C_InitToken on the
/// first free slot, then C_InitPIN in a security-officer session. True when it did.
bool create_token(const server::Config& config, const pkcs11::Module& module,
                  const pkcs11::SecretBytes& so, const pkcs11::SecretBytes& user) {
  const auto& label = config.pkcs11.token.label;
  if (!label) {
    throw CtlError(Exit::usage,
                   "token create: appliance.pkcs11.token_label is needed to name the new token");
  }
  for (const CK_SLOT_ID s : module.slots(true)) {
    const auto info = module.token_info(s);
    if (info.initialized && info.label == *label) return false;
  }
  const auto free = module.free_slot();
  if (!free) {
    throw CtlError(Exit::failure, "token create: the module " + config.pkcs11.module.string() +
                                      " offers no slot with an uninitialized token");
  }
  module.init_token(*free, so, *label);
  // SoftHSMv2 renumbers its slots after C_InitToken: find the new token by its label.
  const CK_SLOT_ID slot = module.find_token(config.pkcs11.token);
  pkcs11::Session officer(module, slot, so, pkcs11::Session::SecurityOfficer{});
  officer.init_user_pin(user);
  return true;
}

/// The work on a fresh module and session; exceptions go to the caller. `so` is the SO PIN
/// when the job creates the token.
int run_body(const server::Config& config, const TokenJob& job, const pkcs11::SecretBytes& pin,
             const pkcs11::SecretBytes* so, const std::function<int(TokenSession&)>& work,
             std::string& audit_detail) {
  server::apply_environment(config.pkcs11.environment);
  pkcs11::Module module(pkcs11::Module::Options{config.pkcs11.module, config.pkcs11.init_args});
  const bool created = so != nullptr && create_token(config, module, *so, pin);
  const CK_SLOT_ID slot = module.find_token(config.pkcs11.token);
  const pkcs11::TokenInfo info = module.token_info(slot);
  std::optional<pkcs11::Session> session;
  if (job.security_officer) {
    session.emplace(module, slot, pin, pkcs11::Session::SecurityOfficer{});
  } else {
    session.emplace(module, slot, pin);
  }
  TokenSession t{config, module, info, *session, server::key_policy(config), {}, created};
  const int code = work(t);
  audit_detail = t.audit_detail;
  return code;
}

// C_FindObjectsFinal on every way out.
class FindGuard {
 public:
  explicit FindGuard(TokenSession& t) : t_(t) {}
  ~FindGuard() {
    t_.module.functions()->C_FindObjectsFinal(t_.session.handle());
    t_.session.count(pkcs11::Fn::FindObjectsFinal);
  }
  FindGuard(const FindGuard&) = delete;
  FindGuard& operator=(const FindGuard&) = delete;
  FindGuard(FindGuard&&) = delete;
  FindGuard& operator=(FindGuard&&) = delete;

 private:
  TokenSession& t_;
};

}  // namespace

int run_on_token(Context& ctx, const TokenJob& job, const std::function<int(TokenSession&)>& work,
                 std::string& audit_detail) {
  try {
    const auto& config = ctx.appliance_config();
    const pkcs11::SecretBytes pin = job.security_officer ? so_pin(job) : user_pin(config);
    std::optional<pkcs11::SecretBytes> creator;  // the SO PIN that initializes the token
    if (job.create_token) creator.emplace(so_pin(job));
    const pkcs11::SecretBytes* so = creator ? &*creator : nullptr;
    std::optional<server::UserIds> user;
    if (::geteuid() == 0 && config.user != "root") {
      try {
        user = server::resolve_user(config.user);
      } catch (const server::ConfigError& e) {
        throw CtlError(Exit::usage, e.what());
      }
    }
    if (!user) return run_body(config, job, pin, so, work, audit_detail);

    std::array<int, 2> pipe{};
    if (::pipe2(pipe.data(), O_CLOEXEC) != 0) {
      throw CtlError(Exit::failure, std::string("pipe: ") + std::strerror(errno));
    }
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw CtlError(Exit::failure, std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::close(pipe[0]);
      int code = 0;
      std::string detail;
      try {
        server::drop_privileges(*user);
        server::forbid_core_dumps();  // the uid change made the process dumpable again
        code = run_body(config, job, pin, so, work, detail);
      } catch (...) {
        code = report_current_exception(ctx);
      }
      if (code == 0 && !detail.empty()) (void)!::write(pipe[1], detail.data(), detail.size());
      std::cout.flush();
      std::cerr.flush();
      std::fflush(nullptr);
      ::_exit(code);
    }
    ::close(pipe[1]);
    std::array<char, 512> buffer{};
    for (;;) {
      const ssize_t n = ::read(pipe[0], buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      audit_detail.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(pipe[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    throw CtlError(Exit::failure, std::string("the token process (running as ") + config.user +
                                      ") ended with signal " + std::to_string(WTERMSIG(status)));
  } catch (...) {
    return report_current_exception(ctx);
  }
}

TokenJob trusted_key_job(Context& ctx, const std::string& so_pin_file) {
  TokenJob job;
  if (!ctx.appliance_config().trusted_keks) return job;
  if (!so_pin_file.empty()) {
    job.security_officer = true;
    job.so_pin_file = so_pin_file;
  } else if (const char* env = std::getenv("LORAKEEP_SO_PIN"); env != nullptr && *env != '\0') {
    job.security_officer = true;
  }
  return job;
}

std::string_view role_name(appliance::KeyRole role) noexcept {
  switch (role) {
    case appliance::KeyRole::storage:
      return "storage";
    case appliance::KeyRole::kek:
      return "kek";
    case appliance::KeyRole::part:
      return "part";
    case appliance::KeyRole::transport:
      return "transport";
  }
  return "?";
}

std::string describe_flags(const pkcs11::KeyAttributes& a) {
  std::string out;
  const auto add = [&out](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(a.token, "token");
  add(!a.private_object, "public");
  add(a.sensitive, "sensitive");
  add(a.always_sensitive, "always-sensitive");
  add(a.extractable, "EXTRACTABLE");
  add(!a.extractable, "not-extractable");
  add(a.never_extractable, "never-extractable");
  add(a.trusted, "trusted");
  add(a.encrypt, "encrypt");
  add(a.decrypt, "decrypt");
  add(a.sign, "sign");
  add(a.verify, "verify");
  add(a.wrap, "wrap");
  add(a.unwrap, "unwrap");
  add(a.derive, "derive");
  return out;
}

std::vector<KeyObject> list_key_objects(TokenSession& t) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  std::array<CK_ATTRIBUTE, 1> query = {{{CKA_CLASS, &cls, sizeof cls}}};
  std::vector<CK_OBJECT_HANDLE> handles;
  {
    auto* fns = t.module.functions();
    t.session.check(fns->C_FindObjectsInit(t.session.handle(), query.data(), query.size()),
                    pkcs11::Fn::FindObjectsInit);
    const FindGuard guard(t);
    std::array<CK_OBJECT_HANDLE, 64> batch{};
    for (;;) {
      CK_ULONG n = 0;
      t.session.check(fns->C_FindObjects(t.session.handle(), batch.data(), batch.size(), &n),
                      pkcs11::Fn::FindObjects);
      for (CK_ULONG i = 0; i < n && i < batch.size(); ++i)
        handles.push_back(batch[i]);
      if (n < batch.size()) break;
    }
  }
  struct Prefix {
    std::string_view text;
    appliance::KeyRole role;
  };
  const std::array<Prefix, 3> prefixes = {{
      {appliance::kek_label_prefix, appliance::KeyRole::kek},
      {appliance::part_key_label_prefix, appliance::KeyRole::part},
      {appliance::transport_kek_label_prefix, appliance::KeyRole::transport},
  }};
  std::vector<KeyObject> out;
  for (const CK_OBJECT_HANDLE h : handles) {
    KeyObject k;
    k.attributes = t.session.attributes(pkcs11::KeyRef{h});
    k.label = k.attributes.label;
    if (k.label.rfind("lorakeep/", 0) != 0) continue;
    if (k.label == appliance::storage_key_label) {
      k.role = appliance::KeyRole::storage;
      k.name = k.label;
    } else {
      for (const auto& p : prefixes) {
        if (k.label.rfind(p.text, 0) == 0) {
          k.role = p.role;
          k.name = k.label.substr(p.text.size());
        }
      }
      if (!k.role) k.name = k.label;
    }
    if (k.role) {
      if (auto ok = appliance::check_policy(k.attributes, *k.role, t.policy); !ok) {
        k.policy_problem = ok.failure().message;
      }
    } else {
      k.policy_problem = "a lorakeep/ label of no known role";
    }
    out.push_back(std::move(k));
  }
  std::sort(out.begin(), out.end(),
            [](const KeyObject& a, const KeyObject& b) { return a.label < b.label; });
  return out;
}

void prepare_token_audit(Context& ctx) {
  if (ctx.has_join_server_section()) (void)ctx.join_server_config();
}

int audit_token_action(Context& ctx, int code, const std::string& action,
                       const std::string& subject, const std::string& detail) {
  if (code != 0) return code;
  try {
    if (!ctx.has_join_server_section()) {
      std::cerr << "lorakeepctl: note: " << ctx.config_path().string()
                << " has no join_server section: no registry audit record of " << action
                << " was kept\n";
      return code;
    }
    ctx.audit(action, subject, detail);
    return code;
  } catch (...) {
    return report_current_exception(ctx);
  }
}

}  // namespace lorakeep::ctl
