// What the bench observes besides its own answers: the appliance's statistics (StatsOp),
// the CPU time of lorakeep-cs and lorakeep-js, and the machine it all ran on.
#include <dirent.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tools/ctl/bench.hpp"

namespace lorakeep::ctl::bench {
namespace {

struct ProcStat {
  int ppid = 0;
  double cpu_seconds = 0;
};

std::optional<ProcStat> read_stat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name may hold blanks and parentheses: fields start after the last ')'.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string state;
  ProcStat s;
  fields >> state >> s.ppid;
  std::string skip;
  for (int i = 0; i < 9; ++i)
    fields >> skip;  // pgrp … cmajflt
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  fields >> utime >> stime;
  if (!fields) return std::nullopt;
  s.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return s;
}

std::string first_line_of(const std::string& command) {
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    std::array<char, 256> buf{};
    if (std::fgets(buf.data(), static_cast<int>(buf.size()), p) != nullptr) out = buf.data();
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

std::string proc_value(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::size_t start = colon + 1;
      while (start < line.size() && (line[start] == ' ' || line[start] == '\t'))
        ++start;
      return line.substr(start);
    }
  }
  return "";
}

}  // namespace

std::optional<ApplianceSnapshot> appliance_stats(host::ApplianceClient& client) {
  crypto::v1::Request request;
  request.set_caller("lorakeepctl:bench");
  request.mutable_stats();
  auto response = client.call(std::move(request), std::chrono::milliseconds(5000));
  if (!response || response->code() != crypto::v1::OK || !response->has_stats()) {
    std::cerr << "lorakeepctl: bench: warning: no statistics from lorakeep-cs: "
              << (response ? response->message() : response.failure().message) << "\n";
    return std::nullopt;
  }
  const auto& s = response->stats();
  ApplianceSnapshot out;
  for (const auto& op : s.operations()) {
    auto& o = out.ops[op.operation()][op.result()];
    o.count += op.count();
    o.latency_us_sum += op.latency_us_sum();
    o.token_us_sum += op.token_us_sum();
    o.pkcs11_calls += op.pkcs11_calls();
    o.crypto_calls += op.pkcs11_crypto_calls();
  }
  out.pkcs11_calls_total = s.pkcs11_calls_total();
  out.sessions_capacity = s.sessions_capacity();
  out.session_timeouts = s.session_timeouts();
  out.token_reinitializations = s.token_reinitializations();
  return out;
}

nlohmann::json appliance_delta(const ApplianceSnapshot& before, const ApplianceSnapshot& after) {
  nlohmann::json ops = nlohmann::json::object();
  nlohmann::json other = nlohmann::json::object();
  for (const auto& [op, results] : after.ops) {
    for (const auto& [result, a] : results) {
      OpStats b;
      if (const auto o = before.ops.find(op); o != before.ops.end()) {
        if (const auto r = o->second.find(result); r != o->second.end()) b = r->second;
      }
      const std::uint64_t n = a.count - b.count;
      if (n == 0) continue;
      if (result != "OK") {
        other[std::string(op).append("/").append(result)] = n;
        continue;
      }
      const auto per = [n](std::uint64_t later, std::uint64_t earlier) {
        return static_cast<double>(later - earlier) / static_cast<double>(n);
      };
      ops[op] = {{"count", n},
                 {"latency_us_per_op", per(a.latency_us_sum, b.latency_us_sum)},
                 {"token_us_per_op", per(a.token_us_sum, b.token_us_sum)},
                 {"pkcs11_calls_per_op", per(a.pkcs11_calls, b.pkcs11_calls)},
                 {"crypto_calls_per_op", per(a.crypto_calls, b.crypto_calls)}};
    }
  }
  return {
      {"ok_operations", ops},
      {"other_results", other},
      {"pkcs11_calls", after.pkcs11_calls_total - before.pkcs11_calls_total},
      {"session_timeouts", after.session_timeouts - before.session_timeouts},
      {"token_reinitializations", after.token_reinitializations - before.token_reinitializations},
      {"sessions_capacity", after.sessions_capacity}};
}

double tree_cpu_seconds(int pid) {
  if (pid <= 0) return 0;
  std::map<int, std::vector<int>> children;
  std::map<int, double> cpu;
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(d)) {
      const int p = std::atoi(e->d_name);
      if (p <= 0) continue;
      if (const auto s = read_stat(p)) {
        children[s->ppid].push_back(p);
        cpu[p] = s->cpu_seconds;
      }
    }
    ::closedir(d);
  }
  double total = 0;
  std::vector<int> todo = {pid};
  while (!todo.empty()) {
    const int p = todo.back();
    todo.pop_back();
    if (const auto c = cpu.find(p); c != cpu.end()) total += c->second;
    if (const auto k = children.find(p); k != children.end()) {
      todo.insert(todo.end(), k->second.begin(), k->second.end());
    }
  }
  return total;
}

double self_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

double load_average() {
  std::array<double, 3> l{};
  if (::getloadavg(l.data(), 3) < 1) return -1;
  return l[0];
}

nlohmann::json machine() {
  utsname u{};
  ::uname(&u);
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  std::array<double, 3> l{};
  ::getloadavg(l.data(), 3);
  return {{"hostname", host.data()},
          {"cpu_model", proc_value("/proc/cpuinfo", "model name")},
          {"cpus_online", std::thread::hardware_concurrency()},
          {"memory_total", proc_value("/proc/meminfo", "MemTotal")},
          {"kernel", std::string(u.sysname).append(" ").append(u.release)},
          {"load_average", {l[0], l[1], l[2]}},
          {"openssl", OpenSSL_version(OPENSSL_VERSION)},
          {"sqlite", sqlite3_libversion()},
          {"softhsm", first_line_of("softhsm2-util --version 2>/dev/null")}};
}

nlohmann::json cpu_affinity(int cs_pid, int js_pid) {
  const auto of = [](const std::string& pid) {
    return proc_value(("/proc/" + pid + "/status").c_str(), "Cpus_allowed_list");
  };
  nlohmann::json out = {{"bench", of("self")}};
  if (cs_pid > 0) out["lorakeep_cs"] = of(std::to_string(cs_pid));
  if (js_pid > 0) out["lorakeep_js"] = of(std::to_string(js_pid));
  return out;
}

}  // namespace lorakeep::ctl::bench
