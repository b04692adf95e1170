#include "process_harness.hpp"

#include <doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "appliance/provision.hpp"

namespace lorakeep::test {
namespace {

std::pair<uid_t, gid_t> nobody() {
  const passwd* p = ::getpwnam("nobody");
  REQUIRE(p != nullptr);
  return {p->pw_uid, p->pw_gid};
}

void chown_tree(const std::filesystem::path& root) {
  const auto [uid, gid] = nobody();
  REQUIRE(::lchown(root.c_str(), uid, gid) == 0);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    REQUIRE(::lchown(entry.path().c_str(), uid, gid) == 0);
  }
}

}  // namespace

Installation::Installation(StorageKey storage)
    : session(token.user_session()),
      keys(token_policy()),
      kek_ns(random_bytes(16)),
      kek_as(random_bytes(16)),
      cluster_secret(random_bytes(32)) {
  if (storage == StorageKey::good) {
    REQUIRE(appliance::create_storage_key(session, keys.policy()).ok());
  } else if (storage == StorageKey::weak) {
    // AES-256 with the right label and usage, but extractable: the policy must refuse it.
    auto key = session.generate_aes_key(pkcs11::KeyTemplate(32)
                                            .label("lorakeep/storage")
                                            .token(true)
                                            .sensitive(true)
                                            .extractable(true)
                                            .wrap(true)
                                            .unwrap(true));
    (void)key.release();
  }
  REQUIRE(appliance::import_key(session, appliance::KeyRole::kek, "ns-kek",
                                pkcs11::SecretBytes(kek_ns), keys.policy())
              .ok());
  REQUIRE(appliance::import_key(session, appliance::KeyRole::kek, "as-kek",
                                pkcs11::SecretBytes(kek_as), keys.policy())
              .ok());
  const auto pin = token.user_pin().reveal();
  std::ofstream(dir.path() / "pin", std::ios::binary)
      << std::string(pin.begin(), pin.end()) << "\n";
  std::ofstream(dir.path() / "cluster.secret", std::ios::binary)
      << std::string(cluster_secret.begin(), cluster_secret.end()) << "\n";
}

std::filesystem::path Installation::write_config(const std::string& listen,
                                                 const std::string& extra,
                                                 const std::string& pkcs11_extra) {
  auto path = dir.path() / "lorakeep.yml";
  std::ofstream out(path);
  const auto load = token.module_options();
  out << "appliance:\n"
      << "  pkcs11:\n"
      << "    module: " << load.path.string() << "\n"
      << "    token_label: " << token.label() << "\n"
      << "    pin_file: pin\n"
      << pkcs11_extra;
  // YAML double quotes: NSS's string holds single quotes, and no '"' or '\\'.
  if (load.reserved) out << "    init_args: \"" << *load.reserved << "\"\n";
  if (!keys.policy().allowed_mechanisms) out << "    allowed_mechanisms: false\n";
  const auto environment = token.environment();
  if (!environment.empty()) out << "    environment:\n";
  for (const auto& [name, value] : environment)
    out << "      " << name << ": " << value << "\n";
  out << "  listen: \"" << listen << "\"\n"
      << "  cluster_secret_file: cluster.secret\n"
      << "  audit_log: audit.log\n"
      << "  user: nobody\n"
      << extra;
  return path;
}

void Installation::hand_over() const {
  // Not root: lorakeep-cs ignores `user:` and runs as the test's own user.
  if (::geteuid() != 0) return;
  chown_tree(token.dir());
  chown_tree(dir.path());
}

CsProcess::CsProcess(const std::filesystem::path& config, const std::filesystem::path& logs)
    : stderr_path_(logs / "stderr.txt") {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  const int err = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(err >= 0);
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    const std::string path = LORAKEEP_CS_PATH;
    const std::string config_text = config.string();
    char* const argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>("--config"),
                          const_cast<char*>(config_text.c_str()), nullptr};
    ::execv(path.c_str(), argv);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err);
  stdout_fd_ = out[0];
}

CsProcess::~CsProcess() {
  if (!exited_) {
    // The workers first: once the master is gone they are no longer its children.
    const auto workers = children();
    ::kill(pid_, SIGKILL);
    for (const pid_t child : workers)
      ::kill(child, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ::close(stdout_fd_);
}

std::optional<std::string> CsProcess::wait_ready(std::chrono::seconds timeout) {
  const std::string prefix = "lorakeep-cs ready on ";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (const auto at = stdout_buffer_.find(prefix); at != std::string::npos) {
      const auto end = stdout_buffer_.find('\n', at);
      if (end != std::string::npos)
        return stdout_buffer_.substr(at + prefix.size(), end - at - prefix.size());
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buffer[256];
      const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
      if (n > 0) {
        stdout_buffer_.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) return std::nullopt;  // stdout closed: the process ended
    }
  }
  return std::nullopt;
}

std::optional<int> CsProcess::wait_exit(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

void CsProcess::signal(int sig) const {
  ::kill(pid_, sig);
}

std::string CsProcess::stderr_text() const {
  std::ifstream in(stderr_path_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<pid_t> CsProcess::children() const {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid …; comm may hold blanks, so read after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid_ && state != 'Z') out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

bool sanitizer_clean(const std::string& stderr_text) {
  return stderr_text.find("Sanitizer") == std::string::npos &&
         stderr_text.find("runtime error:") == std::string::npos;
}

uid_t process_uid(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Uid:", 0) == 0) {
      std::istringstream s(line.substr(4));
      uid_t uid = 0;
      s >> uid;
      return uid;
    }
  }
  return static_cast<uid_t>(-1);
}

uid_t proc_owner(pid_t pid) {
  struct stat st {};
  // Not /proc/<pid> itself: the kernel keeps the directory's owner for ps.
  const auto path = "/proc/" + std::to_string(pid) + "/environ";
  if (::stat(path.c_str(), &st) != 0) return static_cast<uid_t>(-1);
  return st.st_uid;
}

}  // namespace lorakeep::test
