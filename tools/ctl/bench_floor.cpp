// The floor: the join a lorakeep-cs worker runs (appliance::join(), the same wrapped root
// keys from the registry, the same KEK deliveries from the peer table) replayed in a loop
// straight against the configured token — no network, no JSON, no registry, no framing, no
// audit log. What remains is what the token itself costs; the report compares the service
// with it. Each process is a fork that logs in on its own, as a lorakeep-cs worker does
// (SoftHSMv2 serializes the threads of one process), one after the other (SoftHSMv2 rewrites
// its token file at login), and runs as appliance.user when started as root so that the
// token files stay that user's.
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

#include "appliance/join.hpp"
#include "appliance/server/hardening.hpp"
#include "appliance/server/secrets.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/module.hpp"
#include "tools/ctl/bench.hpp"

namespace lorakeep::ctl::bench {
namespace server = appliance::server;
namespace reg = host::registry;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t devices_per_version = 16;
constexpr std::uint16_t floor_dev_nonce = 1;

struct FloorInput {
  std::uint32_t part = 0;
  nsim::Device device;
  appliance::JoinInput in;
  nsim::JoinReq request;  // what the join-accept and keys are checked against
};

pkcs11::SecretBytes user_pin(const server::Config& config) {
  if (config.pkcs11.pin_file) {
    try {
      return server::read_secret_file(*config.pkcs11.pin_file, "appliance.pkcs11.pin_file");
    } catch (const server::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  if (char* value = std::getenv("LORAKEEP_PIN"); value != nullptr && *value != '\0') {
    const std::size_t n = std::strlen(value);
    const std::size_t used = value[n - 1] == '\n' ? n - 1 : n;
    pkcs11::SecretBytes pin(std::span(reinterpret_cast<const std::uint8_t*>(value), used));
    pkcs11::secure_zero(value, n);
    ::unsetenv("LORAKEEP_PIN");
    return pin;
  }
  throw CtlError(Exit::usage,
                 "appliance.pkcs11.pin_file: no user PIN: set pin_file or the "
                 "LORAKEEP_PIN variable");
}

appliance::Delivery delivery_of(const reg::Peer& p) {
  appliance::Delivery d;
  d.kek_label = p.kek_label;
  d.plaintext_allowed = p.plaintext_keys;
  return d;
}

/// The inputs lorakeep-js would send for the first devices of each version.
std::vector<FloorInput> floor_inputs(Context& ctx, const Options& o, const Population& population) {
  auto& registry = ctx.registry(2);
  const auto net_id = lorawan::NetId::from_hex(o.net_id);
  if (!net_id) throw CtlError(Exit::usage, "--net-id: " + net_id.failure().message);
  const auto ns =
      must(registry.find_peer(reg::PeerKind::network_server, net_id->hex()), "reading the peers");
  if (!ns || (!ns->kek_label && !ns->plaintext_keys)) {
    throw CtlError(Exit::not_found, "NetID " + net_id->hex() +
                                        " has no key delivery in the registry (lorakeepctl peer "
                                        "add --net-id … --kek-label …)");
  }
  std::vector<FloorInput> inputs;
  for (std::size_t p = 0; p < population.parts().size(); ++p) {
    const auto& part = population.parts()[p];
    for (std::uint64_t i = 0; i < std::min(part.devices, devices_per_version); ++i) {
      FloorInput f;
      f.part = static_cast<std::uint32_t>(p);
      f.device = population.device(p, i);
      const auto found = must(registry.find_device(f.device.dev_eui), "reading the registry");
      if (!found) {
        throw CtlError(Exit::not_found, "device " + f.device.dev_eui.hex() +
                                            " is not in the registry: run bench with --provision");
      }
      const auto* wrapped = std::get_if<reg::WrappedRootKeys>(&found->root_keys);
      if (wrapped == nullptr) throw CtlError(Exit::usage, "bench devices have wrapped root keys");
      f.request = nsim::make_join_req(f.device, floor_dev_nonce, *net_id,
                                      lorawan::DevAddr::from_uint(0x26000000U + i), 1);
      appliance::JoinInput& in = f.in;
      in.mac_version = part.version;
      in.join_request = f.request.phy_payload;
      in.root_keys = appliance::WrappedRootKeys{wrapped->app_key, wrapped->nwk_key};
      auto join_nonce = lorawan::JoinNonce::create(1);
      in.accept = {*join_nonce,
                   *net_id,
                   f.request.dev_addr,
                   lorawan::DlSettings{f.request.dl_settings},
                   lorawan::RxDelay{f.request.rx_delay},
                   std::nullopt};
      in.ns = delivery_of(*ns);
      if (found->as_id) {
        const auto as = must(registry.find_peer(reg::PeerKind::application_server, *found->as_id),
                             "reading the peers");
        // As lorakeep-js: the AS gets the AppSKey in the JoinAns only under its KEK.
        if (as && as->kek_label) in.as = delivery_of(*as);
      }
      // As lorakeep-js: under the storage key only when the JoinAns takes the AS no key
      // (otherwise a session keeps the AS's envelope, with no token call).
      in.store_app_s_key = !in.as;
      inputs.push_back(std::move(f));
    }
  }
  return inputs;
}

/// The appliance's output judged like a JoinAns, by tools/nsim.
nsim::JoinVerdict judge(const FloorInput& f, const appliance::JoinOutput& out,
                        const nsim::KeyExpectations& keys) {
  nsim::Answer a;
  a.message_type = "JoinAns";
  a.result_code = "Success";
  a.transaction_id = f.request.transaction_id;
  a.sender_id = f.request.join_eui.hex();
  a.receiver_id = f.request.net_id.hex();
  if (f.request.sender_ns_id) a.receiver_ns_id = f.request.sender_ns_id->hex();
  a.phy_payload = out.join_accept;
  a.lifetime = 1;
  a.session_key_id = {1};
  const auto envelope = [](const std::optional<appliance::KeyEnvelope>& e) {
    std::optional<nsim::Envelope> n;
    if (e) {
      n.emplace();
      if (!e->kek_label.empty()) n->kek_label = e->kek_label;
      n->aes_key = e->aes_key;
    }
    return n;
  };
  a.nwk_s_key = envelope(out.nwk_s_key);
  a.f_nwk_s_int_key = envelope(out.f_nwk_s_int_key);
  a.s_nwk_s_int_key = envelope(out.s_nwk_s_int_key);
  a.nwk_s_enc_key = envelope(out.nwk_s_enc_key);
  a.app_s_key = envelope(out.app_s_key);
  nsim::KeyExpectations expect = keys;
  if (!f.in.as) expect.as_kek.reset();
  return nsim::verify_join_answer(f.device, floor_dev_nonce, f.request, a, expect);
}

nlohmann::json calls_json(const pkcs11::CallCounts& c) {
  nlohmann::json by_fn = nlohmann::json::object();
  for (std::size_t i = 0; i < c.by_fn.size(); ++i) {
    if (c.by_fn[i] != 0)
      by_fn[std::string(pkcs11::fn_name(static_cast<pkcs11::Fn>(i)))] = c.by_fn[i];
  }
  const std::uint64_t unwraps = c.of(pkcs11::Fn::UnwrapKey);
  return {{"total", c.total()},
          {"crypto", c.crypto()},
          {"unwrap", unwraps},
          {"crypto_without_unwrap", c.crypto() - unwraps},
          {"by_function", by_fn}};
}

void write_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

std::optional<std::string> read_line(int fd, std::string& buffer) {
  for (;;) {
    if (const std::size_t nl = buffer.find('\n'); nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    std::array<char, 4096> chunk{};
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// One floor process: log in, check each input once, report ready, wait for the go, loop.
[[noreturn]] void floor_child(const server::Config& config, const pkcs11::SecretBytes& pin,
                              const std::optional<server::UserIds>& user,
                              const std::vector<FloorInput>& inputs,
                              const std::vector<std::size_t>& order,
                              const nsim::KeyExpectations& keys, std::uint64_t joins,
                              std::chrono::microseconds gap, std::size_t parts, int result_fd,
                              int go_fd) {
  int code = 0;
  try {
    if (user) {
      server::drop_privileges(*user);
      server::forbid_core_dumps();
    }
    server::apply_environment(config.pkcs11.environment);
    pkcs11::Module module(pkcs11::Module::Options{config.pkcs11.module, config.pkcs11.init_args});
    const CK_SLOT_ID slot = module.find_token(config.pkcs11.token);
    pkcs11::Session session(module, slot, pin);
    appliance::KeyDirectory directory(server::key_policy(config));

    // Each input once: it must give an answer tools/nsim accepts, and its call counts.
    nlohmann::json ready = {{"ready", true}};
    nlohmann::json calls = nlohmann::json::object();
    std::uint64_t verified = 0;
    std::string first_problem;
    for (const auto& f : inputs) {
      const pkcs11::CallCounts before = session.call_counts();
      auto out = appliance::join(session, directory, f.in);
      const pkcs11::CallCounts used = session.call_counts() - before;
      if (!out) {
        if (first_problem.empty()) first_problem = out.failure().message;
        continue;
      }
      const auto verdict = judge(f, *out, keys);
      if (verdict.ok()) {
        ++verified;
      } else if (first_problem.empty()) {
        first_problem = verdict.first_failure();
      }
      const std::string version(lorawan::mac_version_name(f.in.mac_version));
      // Overwritten by each device of the version: the last one's counts are those of a
      // worker whose key handles are cached (the first join also finds and checks the keys).
      calls[version] = calls_json(used);
    }
    ready["verified"] = verified;
    ready["inputs"] = inputs.size();
    ready["problem"] = first_problem;
    ready["calls"] = calls;
    write_line(result_fd, ready.dump());

    char go = 0;
    while (::read(go_fd, &go, 1) < 0 && errno == EINTR) {
    }
    std::vector<double> us_sum(parts, 0);
    std::vector<std::uint64_t> count(parts, 0);
    std::vector<std::uint32_t> latencies;
    latencies.reserve(joins);
    std::uint64_t errors = 0;
    const double cpu0 = cpu_seconds();
    const Clock::time_point t0 = Clock::now();
    double timed_us = 0;
    for (std::uint64_t j = 0; j < joins; ++j) {
      const FloorInput& f = inputs[order[j % order.size()]];
      if (gap.count() > 0) std::this_thread::sleep_for(gap);
      const Clock::time_point a = Clock::now();
      auto out = appliance::join(session, directory, f.in);
      const Clock::time_point b = Clock::now();
      if (!out) ++errors;
      const double us = std::chrono::duration<double, std::micro>(b - a).count();
      timed_us += us;
      us_sum[f.part] += us;
      ++count[f.part];
      latencies.push_back(static_cast<std::uint32_t>(us));
    }
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = cpu_seconds() - cpu0;
    nlohmann::json per = nlohmann::json::array();
    for (std::size_t p = 0; p < parts; ++p) {
      per.push_back(count[p] == 0 ? 0.0 : us_sum[p] / static_cast<double>(count[p]));
    }
    const Percentiles lat = percentiles(std::move(latencies));
    write_line(result_fd, nlohmann::json{{"joins", joins},
                                         {"seconds", wall},
                                         {"cpu_seconds", cpu},
                                         {"errors", errors},
                                         {"timed_us", timed_us},
                                         {"us_per_join_by_part", per},
                                         {"latency", to_json(lat)}}
                              .dump());
  } catch (const std::exception& e) {
    write_line(result_fd, nlohmann::json{{"error", e.what()}}.dump());
    code = 1;
  }
  ::_exit(code);
}

}  // namespace

nlohmann::json run_floor(Context& ctx, const Options& o, const Population& population,
                         const nsim::KeyExpectations& keys, unsigned processes, std::uint64_t joins,
                         std::chrono::microseconds gap) {
  const auto& config = ctx.appliance_config();
  const std::vector<FloorInput> inputs = floor_inputs(ctx, o, population);
  std::optional<cpu_set_t> cs_cpus;
  if (o.cs_pid > 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(o.cs_pid, sizeof(set), &set) == 0) cs_cpus = set;
  }
  // No registry threads across the forks.
  ctx.close_registry();
  const pkcs11::SecretBytes pin = user_pin(config);
  std::optional<server::UserIds> user;
  if (::geteuid() == 0 && config.user != "root") {
    try {
      user = server::resolve_user(config.user);
    } catch (const server::ConfigError& e) {
      throw CtlError(Exit::usage, e.what());
    }
  }
  // The versions in the proportions of --mix, each version's devices in turn.
  std::vector<std::size_t> order;
  {
    std::vector<std::vector<std::size_t>> by_part(population.parts().size());
    for (std::size_t i = 0; i < inputs.size(); ++i)
      by_part[inputs[i].part].push_back(i);
    for (std::uint64_t round = 0; round < devices_per_version; ++round) {
      for (std::size_t p = 0; p < by_part.size(); ++p) {
        const unsigned w = population.parts()[p].weight;
        for (unsigned k = 0; k < w; ++k) {
          order.push_back(by_part[p][(round * w + k) % by_part[p].size()]);
        }
      }
    }
  }
  processes = std::max(1U, processes);
  const std::uint64_t per_process = std::max<std::uint64_t>(1, joins / processes);

  std::array<int, 2> go{};
  if (::pipe2(go.data(), O_CLOEXEC) != 0) {
    throw CtlError(Exit::failure, std::string("pipe: ") + std::strerror(errno));
  }
  struct Child {
    pid_t pid = -1;
    int fd = -1;
    std::string buffer;
  };
  std::vector<Child> children;
  nlohmann::json ready = nlohmann::json::array();
  std::string failure;
  for (unsigned i = 0; i < processes && failure.empty(); ++i) {
    std::array<int, 2> result{};
    if (::pipe2(result.data(), O_CLOEXEC) != 0) {
      failure = std::string("pipe: ") + std::strerror(errno);
      break;
    }
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = ::fork();
    if (pid < 0) {
      failure = std::string("fork: ") + std::strerror(errno);
      ::close(result[0]);
      ::close(result[1]);
      break;
    }
    if (pid == 0) {
      ::close(result[0]);
      ::close(go[1]);
      // On the CPUs lorakeep-cs may use: the floor and the appliance it is compared with
      // then run on the same cores (they differ on a shared host), whatever the bench's own.
      if (cs_cpus) (void)::sched_setaffinity(0, sizeof(*cs_cpus), &*cs_cpus);
      floor_child(config, pin, user, inputs, order, keys, per_process, gap,
                  population.parts().size(), result[1], go[0]);
    }
    ::close(result[1]);
    children.push_back({pid, result[0], {}});
    // The next process logs in only once this one has (SoftHSMv2's token file).
    const auto line = read_line(result[0], children.back().buffer);
    const auto j = line ? nlohmann::json::parse(*line, nullptr, false) : nlohmann::json();
    if (!line || j.is_discarded() || j.contains("error")) {
      failure = line && !j.is_discarded() && j.contains("error")
                    ? j["error"].get<std::string>()
                    : "a floor process ended before it was ready";
      break;
    }
    ready.push_back(j);
  }
  ::close(go[0]);
  if (failure.empty()) {
    const std::string bytes(children.size(), 'g');
    (void)!::write(go[1], bytes.data(), bytes.size());
  }
  ::close(go[1]);  // children still waiting see end of file and go on to fail fast

  nlohmann::json results = nlohmann::json::array();
  for (auto& c : children) {
    if (failure.empty()) {
      const auto line = read_line(c.fd, c.buffer);
      const auto j = line ? nlohmann::json::parse(*line, nullptr, false) : nlohmann::json();
      if (!line || j.is_discarded() || j.contains("error")) {
        failure = line && !j.is_discarded() && j.contains("error")
                      ? j["error"].get<std::string>()
                      : "a floor process ended without its result";
      } else {
        results.push_back(j);
      }
    }
    ::close(c.fd);
    if (!failure.empty()) ::kill(c.pid, SIGTERM);
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (!failure.empty()) throw CtlError(Exit::failure, "floor: " + failure);

  double max_wall = 0;
  double cpu = 0;
  double us_mean = 0;
  std::uint64_t total = 0;
  std::uint64_t errors = 0;
  std::vector<double> per_part(population.parts().size(), 0);
  for (const auto& r : results) {
    max_wall = std::max(max_wall, r["seconds"].get<double>());
    cpu += r["cpu_seconds"].get<double>();
    total += r["joins"].get<std::uint64_t>();
    errors += r["errors"].get<std::uint64_t>();
    // Paced, the wall time is mostly the gaps: the joins' own time is what was timed.
    us_mean += (gap.count() > 0 ? r["timed_us"].get<double>() : r["seconds"].get<double>() * 1e6) /
               r["joins"].get<double>();
    for (std::size_t p = 0; p < per_part.size(); ++p) {
      per_part[p] += r["us_per_join_by_part"][p].get<double>();
    }
  }
  const auto n = static_cast<double>(results.size());
  nlohmann::json per_version = nlohmann::json::object();
  const auto& calls = ready[0]["calls"];
  for (std::size_t p = 0; p < per_part.size(); ++p) {
    const std::string v(lorawan::mac_version_name(population.parts()[p].version));
    per_version[v] = {{"us_per_join", per_part[p] / n},
                      {"calls_per_join", calls.contains(v) ? calls[v] : nlohmann::json()}};
  }
  std::uint64_t verified = 0;
  std::uint64_t checked = 0;
  std::string problem;
  for (const auto& r : ready) {
    verified += r["verified"].get<std::uint64_t>();
    checked += r["inputs"].get<std::uint64_t>();
    if (problem.empty()) problem = r["problem"].get<std::string>();
  }
  return {{"processes", results.size()},
          {"gap_us", gap.count()},
          {"user", user ? config.user : std::string("(as invoked)")},
          {"joins", total},
          {"errors", errors},
          {"seconds", max_wall},
          {"joins_per_s", max_wall > 0 ? static_cast<double>(total) / max_wall : 0},
          {"us_per_join", us_mean / n},
          {"cpu_us_per_join", total > 0 ? cpu * 1e6 / static_cast<double>(total) : 0},
          {"latency", results[0]["latency"]},
          {"per_version", per_version},
          {"answers_verified", verified},
          {"answers_checked", checked},
          {"first_problem", problem}};
}

}  // namespace lorakeep::ctl::bench
