// lorakeepctl bench: the command. Runs, in order: provisioning (--provision), a warm-up, a
// calibration (one connection, one join at a time: the appliance's own time per join
// without queueing), rounds of a calibration followed by a 1-process floor (--rounds, with
// --floor), whose median ratio says what the appliance adds, the measured load, and the
// floor (--floor: 1 process, then appliance.workers); then writes the report.
#include <openssl/rand.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "lorakeep_config.h"
#include "tools/ctl/bench.hpp"
#include "tools/ctl/ca_map.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/secret_input.hpp"

#ifndef LORAKEEP_BENCH_PLOT
#define LORAKEEP_BENCH_PLOT "bench-plot"
#endif

namespace lorakeep::ctl {
namespace {

using bench::Options;
namespace reg = host::registry;

nsim::Key key_file(const std::string& file, const char* what) {
  const pkcs11::SecretBytes secret = read_key_file(file, what, {16, 32});
  auto key = nsim::Key::from(secret.reveal());
  if (!key) throw CtlError(Exit::usage, file + ": " + what + ": not 16 or 32 bytes");
  return *key;
}

std::string now_utc() {
  std::array<char, 32> buf{};
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

std::uint64_t random_seed() {
  std::uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) v = 0x2545F4914F6CDD1DULL;
  return v | 1;
}

/// The KEK labels the registry's peers have: what the answers must carry.
nsim::KeyExpectations expectations(Context& ctx, const Options& o, const lorawan::NetId& net_id) {
  auto& registry = ctx.registry();
  nsim::KeyExpectations keys;
  const auto ns =
      must(registry.find_peer(reg::PeerKind::network_server, net_id.hex()), "reading the peers");
  if (!ns) {
    throw CtlError(Exit::not_found,
                   "NetID " + net_id.hex() + " is no peer (lorakeepctl peer add --net-id …)");
  }
  if (ns->kek_label) {
    if (o.kek_file.empty()) {
      throw CtlError(Exit::usage, "--kek-file: NetID " + net_id.hex() +
                                      " gets its keys under KEK '" + *ns->kek_label +
                                      "': give that KEK's file so that they can be checked");
    }
    keys.ns_kek = nsim::Kek{*ns->kek_label, key_file(o.kek_file, "NS KEK")};
  } else if (!o.kek_file.empty()) {
    throw CtlError(Exit::usage, "--kek-file: NetID " + net_id.hex() + " has no KEK label");
  }
  if (!o.as_id.empty()) {
    const auto as =
        must(registry.find_peer(reg::PeerKind::application_server, o.as_id), "reading the peers");
    if (as && as->kek_label) {
      if (o.as_kek_file.empty()) {
        throw CtlError(Exit::usage, "--as-kek-file: AS " + o.as_id +
                                        " gets the AppSKey under KEK '" + *as->kek_label +
                                        "': give that KEK's file");
      }
      keys.as_kek = nsim::Kek{*as->kek_label, key_file(o.as_kek_file, "AS KEK")};
    } else if (!o.as_kek_file.empty()) {
      throw CtlError(Exit::usage, "--as-kek-file: AS " + o.as_id + " has no KEK in the registry");
    }
  }
  return keys;
}

struct Observed {
  double wall = 0;
  double cs = 0;
  double js = 0;
  double self = 0;
  static Observed now(const Options& o) {
    Observed x;
    x.wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    x.cs = bench::tree_cpu_seconds(o.cs_pid);
    x.js = bench::tree_cpu_seconds(o.js_pid);
    x.self = bench::self_cpu_seconds();
    return x;
  }
};

/// Appliance time of the joins (all versions together) per join, from a stats delta.
std::optional<double> appliance_us(const nlohmann::json& delta, const std::string& op) {
  const auto& ops = delta["ok_operations"];
  if (!ops.contains(op)) return std::nullopt;
  return ops[op]["latency_us_per_op"].get<double>();
}

/// The token's part of the appliance time per join, from a stats delta.
std::optional<double> token_us(const nlohmann::json& delta, const std::string& op) {
  const auto& ops = delta["ok_operations"];
  if (!ops.contains(op) || !ops[op].contains("token_us_per_op")) return std::nullopt;
  return ops[op]["token_us_per_op"].get<double>();
}

/// How long, per join, the worker serving a calibration was not serving a join: the
/// calibration's wall time less the appliance's time on its joins, per join. (TLS, JSON,
/// SQLite and the bench run meanwhile, elsewhere.)
std::optional<std::chrono::microseconds> calibration_idle(const nlohmann::json& calibration) {
  if (!calibration.contains("appliance")) return std::nullopt;
  const auto ok = calibration["ok"].get<double>();
  if (ok <= 0) return std::nullopt;
  double busy = 0;
  for (const std::string op : {"join_1_0", "join_1_1"}) {
    const auto& ops = calibration["appliance"]["ok_operations"];
    if (!ops.contains(op)) continue;
    busy += ops[op]["count"].get<double>() * ops[op]["latency_us_per_op"].get<double>();
  }
  const double idle = (calibration["seconds"].get<double>() * 1e6 - busy) / ok;
  if (idle <= 0) return std::nullopt;
  return std::chrono::microseconds(static_cast<std::int64_t>(idle));
}

/// The floor's time per join for the versions behind one appliance operation.
std::optional<double> floor_us(const nlohmann::json& floor, const std::string& op) {
  double sum = 0;
  int n = 0;
  for (const auto& [v, pv] : floor["per_version"].items()) {
    const bool one_one = v == "1.1";
    if ((op == "join_1_1") != one_one) continue;
    sum += pv["us_per_join"].get<double>();
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

/// Draws the report with tools/bench-plot; false (and a warning saying why) if not drawn.
bool plot(const std::string& json_file, const std::string& png) {
  const char* env = std::getenv("LORAKEEP_BENCH_PLOT");
  const std::string script = env != nullptr && *env != '\0' ? env : LORAKEEP_BENCH_PLOT;
  std::cout.flush();
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::cerr << "lorakeepctl: bench: warning: no plot: fork: " << std::strerror(errno) << "\n";
    return false;
  }
  if (pid == 0) {
    // Run as a program: its #! line names Debian's python3, which has matplotlib.
    ::execl(script.c_str(), script.c_str(), json_file.c_str(), png.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    std::cerr << "lorakeepctl: bench: warning: no plot: cannot run " << script
              << " (missing or not executable; LORAKEEP_BENCH_PLOT names another)\n";
  } else {
    // The script said why on the standard error it shares with us.
    std::cerr << "lorakeepctl: bench: warning: " << script << " did not draw " << png << " ("
              << (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                    : "killed by signal " + std::to_string(WTERMSIG(status)))
              << ")\n";
  }
  return false;
}

int run_bench(Context& ctx, const Options& o) {
  std::signal(SIGPIPE, SIG_IGN);
  if (o.seed_file.empty()) throw CtlError(Exit::usage, "--seed-file is required");
  if (!o.plot.empty() && o.out.empty()) throw CtlError(Exit::usage, "--plot needs --out");
  if (!o.plot.empty() && o.joins == 0) {
    throw CtlError(Exit::usage, "--plot draws the measured load, and --joins 0 measures none");
  }
  const auto net_id = lorawan::NetId::from_hex(o.net_id);
  if (!net_id) throw CtlError(Exit::usage, "--net-id: " + net_id.failure().message);
  if (o.app_s_key_req > 0 && (o.as_id.empty() || o.as_cert.empty() || o.as_key.empty())) {
    throw CtlError(Exit::usage, "--app-s-key-req needs --as-id, --as-cert and --as-cert-key-file");
  }
  if (o.joins > 0 && (o.url.empty() || o.ca.empty() || o.cert.empty() || o.key.empty())) {
    throw CtlError(Exit::usage, "the load needs --url, --ca, --cert and --cert-key-file");
  }
  (void)ctx.join_server_config();
  const bench::Population population(o, key_file(o.seed_file, "seed"));

  nlohmann::json report = {{"tool", "lorakeepctl bench"},
                           {"version", LORAKEEP_VERSION},
                           {"label", o.label},
                           {"started", now_utc()},
                           {"machine", bench::machine()},
                           {"cpu_affinity", bench::cpu_affinity(o.cs_pid, o.js_pid)}};
  nlohmann::json options = {{"url", o.url},
                            {"net_id", net_id->hex()},
                            {"mix", o.mix},
                            {"devices", o.devices},
                            {"as_id", o.as_id},
                            {"app_s_key_req", o.app_s_key_req},
                            {"connections", o.connections},
                            {"rate", o.rate},
                            {"joins", o.joins},
                            {"warmup", o.warmup},
                            {"calibrate", o.calibrate},
                            {"floor", o.floor},
                            {"floor_joins", o.floor_joins},
                            {"rounds", o.rounds}};
  report["options"] = options;
  const auto& appliance_config = ctx.appliance_config();
  report["appliance_config"] = {{"workers", appliance_config.workers},
                                {"sessions_per_worker", appliance_config.sessions_per_worker},
                                {"module", appliance_config.pkcs11.module.string()}};

  if (o.provision) {
    const auto p = bench::provision(ctx, o, population);
    report["provisioning"] = {
        {"added", p.added},
        {"already_present", p.present},
        {"seconds", p.seconds},
        {"devices_per_s", p.seconds > 0 ? static_cast<double>(p.added) / p.seconds : 0}};
  }
  auto& registry = ctx.registry(8);
  report["devices"] = {{"population", population.describe()},
                       {"registry", must(registry.count_devices(), "counting devices")}};

  bool clean = true;
  // One sequential phase through the service (set when there is a load target).
  std::function<nlohmann::json(std::uint64_t)> calibrate;
  std::optional<bench::Scheduler> scheduler_storage;
  bench::LoadTarget target;

  // Rounds of a calibration and a 1-process floor back to back (see --rounds).
  nlohmann::json rounds = nlohmann::json::array();
  const auto run_rounds = [&] {
    const nsim::KeyExpectations keys = expectations(ctx, o, *net_id);
    const std::uint64_t floor_joins = std::max<std::uint64_t>(200, o.floor_joins / o.rounds);
    for (unsigned i = 0; i < o.rounds; ++i) {
      nlohmann::json round = {{"calibration", calibrate(o.calibrate)}};
      // Also the same floor paced like the calibration: idle as long between joins as the
      // worker was. It tells what idling alone costs the token's work on this machine. The
      // two floors take turns at coming first, so that drift does not favour one.
      const auto idle = calibration_idle(round["calibration"]);
      for (const bool paced : {i % 2 == 1, i % 2 == 0}) {
        if (paced && !idle) continue;
        const char* name = paced ? "paced_floor" : "floor";
        round[name] = bench::run_floor(ctx, o, population, keys, 1, floor_joins,
                                       paced ? *idle : std::chrono::microseconds{});
        clean = clean && round[name]["errors"] == 0;
      }
      for (const std::string op : {"join_1_0", "join_1_1"}) {
        const double a = round["calibration"].contains("appliance")
                             ? appliance_us(round["calibration"]["appliance"], op).value_or(0)
                             : 0;
        const double f = floor_us(round["floor"], op).value_or(0);
        if (a > 0 && f > 0) round[op + "_appliance_over_floor"] = a / f;
        if (!round.contains("paced_floor")) continue;
        const double p = floor_us(round["paced_floor"], op).value_or(0);
        if (a > 0 && p > 0) round[op + "_appliance_over_paced_floor"] = a / p;
        if (f > 0 && p > 0) round[op + "_paced_floor_over_floor"] = p / f;
      }
      rounds.push_back(std::move(round));
    }
    report["rounds"] = rounds;
  };
  // The median ratio of the rounds, with the medians of both sides.
  const auto summarize_rounds = [&](nlohmann::json& cmp) {
    for (const std::string op : {"join_1_0", "join_1_1"}) {
      std::vector<double> ratios;
      std::vector<double> appliance;
      std::vector<double> token;
      std::vector<double> floor;
      for (const auto& round : rounds) {
        if (!round.contains(op + "_appliance_over_floor")) continue;
        ratios.push_back(round[op + "_appliance_over_floor"].get<double>());
        appliance.push_back(*appliance_us(round["calibration"]["appliance"], op));
        token.push_back(token_us(round["calibration"]["appliance"], op).value_or(0));
        floor.push_back(*floor_us(round["floor"], op));
      }
      if (ratios.empty()) continue;
      const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        const std::size_t n = v.size();
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
      };
      cmp[op + "_appliance_us_sequential"] = median(appliance);
      // Where the appliance time goes: on the token (the same join as the floor's, but in a
      // serving process) and the appliance's own (framing, protobuf, checks, dispatch).
      cmp[op + "_token_us_sequential"] = median(token);
      cmp[op + "_appliance_own_us_sequential"] = median(appliance) - median(token);
      cmp[op + "_token_in_service_over_floor"] = median(token) / median(floor);
      cmp[op + "_floor_us"] = median(floor);
      cmp[op + "_appliance_over_floor"] = median(ratios);
      cmp[op + "_appliance_over_floor_min"] = *std::min_element(ratios.begin(), ratios.end());
      cmp[op + "_appliance_over_floor_max"] = *std::max_element(ratios.begin(), ratios.end());
      std::vector<double> paced;
      std::vector<double> paced_floor;
      std::vector<double> idle;
      for (const auto& round : rounds) {
        if (!round.contains(op + "_appliance_over_paced_floor")) continue;
        paced.push_back(round[op + "_appliance_over_paced_floor"].get<double>());
        paced_floor.push_back(*floor_us(round["paced_floor"], op));
        idle.push_back(round["paced_floor"]["gap_us"].get<double>());
      }
      if (paced.empty()) continue;
      cmp[op + "_paced_floor_us"] = median(paced_floor);
      cmp[op + "_paced_floor_gap_us"] = median(idle);
      cmp[op + "_paced_floor_over_floor"] = median(paced_floor) / median(floor);
      cmp[op + "_appliance_over_paced_floor"] = median(paced);
    }
  };
  if (o.joins > 0) {
    const auto url = nsim::Url::parse(o.url);
    if (!url) throw CtlError(Exit::usage, "--url: " + url.failure().message);
    target.population = &population;
    target.url = *url;
    target.net_id = *net_id;
    target.keys = expectations(ctx, o, *net_id);
    target.as_id = o.as_id;
    target.timeout = std::chrono::milliseconds(o.timeout_ms);
    target.ns_tls = must(nsim::TlsContext::create({o.ca, o.cert, o.key}), "");
    if (o.app_s_key_req > 0) {
      if (!target.keys.as_kek) {
        throw CtlError(Exit::usage, "--app-s-key-req: the AS needs a KEK to check the AppSKey");
      }
      target.as_tls = must(nsim::TlsContext::create({o.ca, o.as_cert, o.as_key}), "");
    }
    for (const auto& p : population.parts()) {
      if (p.devices < 2 * o.connections) {
        std::cerr << "lorakeepctl: bench: warning: only " << p.devices << " LoRaWAN "
                  << lorawan::mac_version_name(p.version) << " devices for " << o.connections
                  << " connections: a device may be joining twice at once\n";
      }
    }
    auto* client = &ctx.appliance(std::max<std::size_t>(2, o.provision_jobs));
    auto& scheduler = scheduler_storage.emplace(
        population, [&ctx]() -> reg::Registry& { return ctx.registry(8); }, random_seed());

    if (o.warmup > 0) {
      const auto items = scheduler.draw(o.warmup);
      const auto r = bench::run_phase(target, "warmup", items, o.connections, 0, 0);
      report["warmup"] = bench::phase_json(r, population, false);
    }
    calibrate = [&, client](std::uint64_t joins) {
      const auto items = scheduler_storage->draw(joins);
      const auto before = bench::appliance_stats(*client);
      const Observed x0 = Observed::now(o);
      const auto r = bench::run_phase(target, "calibration", items, 1, 0, 0);
      const Observed x1 = Observed::now(o);
      const auto after = bench::appliance_stats(*client);
      nlohmann::json out = bench::phase_json(r, population, false);
      if (before && after) out["appliance"] = bench::appliance_delta(*before, *after);
      if (o.cs_pid > 0) {
        out["cs_cpu_us_per_join"] = (x1.cs - x0.cs) * 1e6 / std::max(1.0, out["ok"].get<double>());
      }
      clean = clean && out["ok"] == out["requests"];
      return out;
    };
    if (o.calibrate > 0) report["calibration"] = calibrate(o.calibrate);
    // Before the load, on workers as fresh as pkcs11.reinitialize_after keeps them.
    if (o.floor && o.calibrate > 0 && o.rounds > 0) run_rounds();
    const auto items = scheduler.draw(o.joins);
    report["nonce_resets"] = scheduler.nonce_resets();
    const double load_before = bench::load_average();
    const auto before = bench::appliance_stats(*client);
    const Observed x0 = Observed::now(o);
    const auto r = bench::run_phase(target, "load", items, o.connections, o.rate, o.app_s_key_req);
    const Observed x1 = Observed::now(o);
    const auto after = bench::appliance_stats(*client);
    report["load"] = bench::phase_json(r, population, true);
    report["load"]["load_average_before"] = load_before;
    report["load"]["load_average_after"] = bench::load_average();
    clean = clean && report["load"]["ok"] == report["load"]["requests"];
    if (report["load"].contains("app_s_key_req")) {
      clean = clean &&
              report["load"]["app_s_key_req"]["ok"] == report["load"]["app_s_key_req"]["requests"];
    }
    if (before && after) report["appliance"] = bench::appliance_delta(*before, *after);
    const double ok = std::max(1.0, report["load"]["ok"].get<double>());
    const double wall = x1.wall - x0.wall;
    report["cpu"] = {
        {"pids_observed", {{"lorakeep_cs", o.cs_pid}, {"lorakeep_js", o.js_pid}}},
        {"cs_us_per_join", (x1.cs - x0.cs) * 1e6 / ok},
        {"js_us_per_join", (x1.js - x0.js) * 1e6 / ok},
        {"bench_us_per_join", (x1.self - x0.self) * 1e6 / ok},
        {"cores_busy",
         wall > 0 ? ((x1.cs - x0.cs) + (x1.js - x0.js) + (x1.self - x0.self)) / wall : 0},
        {"cores_busy_cs", wall > 0 ? (x1.cs - x0.cs) / wall : 0},
        {"cores_busy_js", wall > 0 ? (x1.js - x0.js) / wall : 0},
        {"cores_busy_bench", wall > 0 ? (x1.self - x0.self) / wall : 0}};
  }

  if (o.floor) {
    const nsim::KeyExpectations keys = expectations(ctx, o, *net_id);
    std::vector<unsigned> counts;
    if (o.floor_processes != 0) {
      counts.push_back(o.floor_processes);
    } else {
      counts.push_back(1);
      if (appliance_config.workers > 1) counts.push_back(appliance_config.workers);
    }
    nlohmann::json floors = nlohmann::json::array();
    for (const unsigned n : counts) {
      floors.push_back(bench::run_floor(ctx, o, population, keys, n, o.floor_joins));
      clean = clean && floors.back()["errors"] == 0 &&
              floors.back()["answers_verified"] == floors.back()["answers_checked"];
    }
    report["floor"] = floors;

    // What the service adds on top of the token.
    nlohmann::json cmp = nlohmann::json::object();
    if (report.contains("rounds")) {
      summarize_rounds(cmp);
    } else {
      for (const std::string op : {"join_1_0", "join_1_1"}) {
        const auto f = floor_us(floors[0], op);
        if (report.contains("calibration") && report["calibration"].contains("appliance")) {
          const auto a = appliance_us(report["calibration"]["appliance"], op);
          if (a && f && *f > 0) {
            cmp[op + "_appliance_us_sequential"] = *a;
            cmp[op + "_floor_us"] = *f;
            cmp[op + "_appliance_over_floor"] = *a / *f;
          }
        }
      }
    }
    // CPU time is immune to other processes taking turns on the cores; wall time is not.
    if (report.contains("calibration") && report["calibration"].contains("cs_cpu_us_per_join")) {
      cmp["sequential_cs_cpu_us_per_join"] = report["calibration"]["cs_cpu_us_per_join"];
      cmp["floor_cpu_us_per_join_1_process"] = floors[0]["cpu_us_per_join"];
      cmp["sequential_cs_cpu_over_floor_cpu"] =
          report["calibration"]["cs_cpu_us_per_join"].get<double>() /
          floors[0]["cpu_us_per_join"].get<double>();
    }
    if (report.contains("cpu") && o.cs_pid > 0) {
      const auto& last = floors.back();
      cmp["load_cs_cpu_us_per_join"] = report["cpu"]["cs_us_per_join"];
      cmp["floor_cpu_us_per_join"] = last["cpu_us_per_join"];
      cmp["load_cs_cpu_over_floor_cpu"] =
          report["cpu"]["cs_us_per_join"].get<double>() / last["cpu_us_per_join"].get<double>();
    }
    if (report.contains("load")) {
      const auto& last = floors.back();
      cmp["end_to_end_joins_per_s_over_floor"] =
          report["load"]["ok_per_s"].get<double>() / last["joins_per_s"].get<double>();
    }
    report["service_vs_floor"] = cmp;
  }
  report["finished"] = now_utc();
  report["clean"] = clean;

  bool plotted = false;
  if (!o.out.empty()) {
    write_file_atomically(o.out, report.dump(1) + "\n", 0644);
    plotted = !o.plot.empty() && plot(o.out, o.plot);
  }
  if (ctx.json()) {
    print_json(report);
  } else {
    bench::print_summary(report);
    if (!o.out.empty()) std::cout << "  report: " << o.out << "\n";
    if (plotted) std::cout << "  plot: " << o.plot << "\n";
    if (!clean) std::cout << "  NOT CLEAN: some requests failed or some answers were wrong\n";
  }
  return clean ? 0 : static_cast<int>(Exit::failure);
}

}  // namespace

void register_bench(CLI::App& app, Context& ctx) {
  auto o = std::make_shared<Options>();
  auto* c = add_command(
      app, "bench",
      "Benchmark joins as a Network Server would send them (docs/benchmarks.md): provision "
      "devices whose keys come from a seed, drive JoinReqs over keep-alive mTLS at a fixed "
      "rate or as fast as they are answered, verify every answer cryptographically, and "
      "report joins/s, latency percentiles, errors by result code, the appliance's PKCS#11 "
      "calls per join and a floor measured straight against the token. Exit 0 when every "
      "request succeeded and every answer verified",
      "  lorakeepctl --config lorakeep.yml bench --url https://127.0.0.1:8443/ --ca js-ca.pem \\\n"
      "    --cert ns.pem --cert-key-file ns.key --net-id 000013 --kek-file ns.kek --seed-file "
      "bench.seed \\\n"
      "    --devices 1000 --mix 1.1 --as-id as.bench --as-kek-file as.kek --provision \\\n"
      "    --connections 32 --joins 30000 --floor --out report.json --plot report.png");
  c->add_option("--url", o->url, "The Join Server, https://HOST:PORT/");
  c->add_option("--ca", o->ca, "PEM: the CA of the Join Server's certificate");
  c->add_option("--cert", o->cert, "PEM: the Network Server's client certificate");
  c->add_option("--cert-key-file", o->key,
                "PEM: the private key of --cert (a file; never the key itself)");
  c->add_option("--net-id", o->net_id, "The Network Server's NetID (the devices' home)")
      ->required();
  c->add_option("--kek-file", o->kek_file, "The NS's KEK, to unwrap and check the network keys");
  c->add_option("--seed-file", o->seed_file,
                "16 or 32 bytes (hex) from which every device's keys are derived")
      ->required();
  c->add_option("--devices", o->devices, "How many devices, over the versions of --mix");
  c->add_option("--mix", o->mix, "MAC versions and weights, e.g. 1.1 or 1.0.2:1,1.0.4:1,1.1:2");
  c->add_option("--join-eui", o->join_eui, "The devices' JoinEUI");
  c->add_option("--eui-prefix", o->eui_prefix,
                "First byte of the devices' DevEUIs (then the version, then a 48-bit index)");
  c->add_option("--as-id", o->as_id, "The devices' Application Server");
  c->add_option("--as-kek-file", o->as_kek_file,
                "The AS's KEK: the AppSKey in each JoinAns is unwrapped and checked");
  c->add_option("--as-cert", o->as_cert, "PEM: the AS's client certificate (AppSKeyReq)");
  c->add_option("--as-cert-key-file", o->as_key, "PEM: the private key of --as-cert (a file)");
  c->add_option("--app-s-key-req", o->app_s_key_req,
                "Fraction of successful joins followed by an AppSKeyReq")
      ->check(CLI::Range(0.0, 1.0));
  c->add_flag("--provision", o->provision, "Add the devices missing from the registry first");
  c->add_option("--provision-jobs", o->provision_jobs, "Root keys wrapped at once")
      ->check(CLI::Range(1, 256));
  c->add_option("--connections", o->connections, "Keep-alive connections (one thread each)")
      ->check(CLI::Range(1, 1024));
  c->add_option("--rate", o->rate, "Joins per second, open loop; 0: as fast as answered")
      ->check(CLI::Range(0.0, 1e6));
  c->add_option("--joins", o->joins, "Joins in the measured load (0: none)");
  c->add_option("--warmup", o->warmup, "Joins sent first and not measured");
  c->add_option("--calibrate", o->calibrate,
                "Joins sent one at a time on one connection: the appliance's time per join "
                "without queueing, compared with the floor");
  c->add_option("--timeout-ms", o->timeout_ms, "How long to wait for each answer")
      ->check(CLI::Range(1, 600000));
  c->add_flag("--floor", o->floor,
              "Also replay the joins straight against the token (1 process, then "
              "appliance.workers processes)");
  c->add_option("--floor-joins", o->floor_joins, "Joins per floor measurement");
  c->add_option("--floor-processes", o->floor_processes,
                "Floor processes (default: 1, then appliance.workers)");
  c->add_option("--rounds", o->rounds,
                "With --floor and --calibrate: rounds of a calibration (--calibrate joins) "
                "followed at once by a 1-process floor (--floor-joins / rounds joins), run "
                "after the warm-up, so that the machine's drift hits both sides of each ratio "
                "alike; the median ratio is reported (0: no rounds)")
      ->check(CLI::Range(0, 100));
  c->add_option("--cs-pid", o->cs_pid, "lorakeep-cs's master pid: its CPU time per join");
  c->add_option("--js-pid", o->js_pid, "lorakeep-js's pid: its CPU time per join");
  c->add_option("--out", o->out, "Write the report (JSON) here");
  c->add_option("--plot", o->plot, "Draw the report as a PNG here (needs --out)");
  c->add_option("--label", o->label, "A name for this run in the report");
  on_parsed(c, ctx, o, &run_bench);
}

}  // namespace lorakeep::ctl
