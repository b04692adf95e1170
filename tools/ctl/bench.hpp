// lorakeepctl bench (docs/benchmarks.md): provisions devices whose keys come from a seed,
// drives JoinReqs at lorakeep-js as a Network Server would (keep-alive mTLS, fixed rate or
// as fast as it answers), verifies every answer cryptographically, and reports throughput,
// latency, errors by result code, the appliance's statistics per join, and a floor: the
// same join replayed straight against the token, so that the report can say what the
// service adds. The parts: bench_devices.cpp (population, provisioning, schedule),
// bench_load.cpp (the load), bench_stats.cpp (appliance statistics, CPU, machine),
// bench_floor.cpp (the floor), bench_report.cpp (percentiles, JSON), bench.cpp (command).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "crypto.pb.h"
#include "host/appliance_client.hpp"
#include "host/registry/registry.hpp"
#include "schemas/lorawan/types.hpp"
#include "tools/ctl/app.hpp"
#include "tools/nsim/device.hpp"
#include "tools/nsim/https_client.hpp"
#include "tools/nsim/ns.hpp"

namespace lorakeep::ctl::bench {

struct Options {
  // The Network Server that sends the joins.
  std::string url;
  std::string ca;
  std::string cert;
  std::string key;
  std::string net_id;
  std::string kek_file;  // the NS's KEK: every network key is unwrapped with it
  // The devices.
  std::string seed_file;
  std::uint64_t devices = 1000;
  std::string mix = "1.1";
  std::string join_eui = "70B3D57ED0000000";
  std::string eui_prefix = "BE";
  std::string as_id;        // the devices' Application Server (empty: none)
  std::string as_kek_file;  // its KEK: the AppSKey is expected in each JoinAns under it
  std::string as_cert;      // its client certificate, for AppSKeyReq
  std::string as_key;
  double app_s_key_req = 0;  // fraction of successful joins followed by an AppSKeyReq
  bool provision = false;
  std::size_t provision_jobs = 32;
  // The load.
  std::size_t connections = 32;
  double rate = 0;  // joins/s, open loop; 0: as fast as the connections are answered
  std::uint64_t joins = 10000;
  std::uint64_t warmup = 1000;
  std::uint64_t calibrate = 300;
  unsigned timeout_ms = 10000;
  // The floor.
  bool floor = false;
  std::uint64_t floor_joins = 4000;
  unsigned floor_processes = 0;  // 0: appliance.workers
  unsigned rounds = 5;           // appliance-vs-floor rounds (calibration, then 1-process floor)
  // Observation and output.
  int cs_pid = 0;
  int js_pid = 0;
  std::string out;
  std::string plot;
  std::string label;
};

// ---- devices (bench_devices.cpp) ----

struct MixPart {
  lorawan::MacVersion version = lorawan::MacVersion::v1_1;
  unsigned weight = 1;
  std::uint64_t devices = 0;  // this version's share of --devices
};

/// The bench's devices: for each MAC version of the mix a range of DevEUIs
/// <prefix> <version code> <48-bit index>, root keys from the seed (nsim::seeded_key).
class Population {
 public:
  Population(const Options& o, const nsim::Key& seed);
  [[nodiscard]] const std::vector<MixPart>& parts() const noexcept { return parts_; }
  [[nodiscard]] lorawan::DevEui dev_eui(std::size_t part, std::uint64_t index) const;
  [[nodiscard]] nsim::Device device(std::size_t part, std::uint64_t index) const;
  [[nodiscard]] const lorawan::JoinEui& join_eui() const noexcept { return join_eui_; }
  [[nodiscard]] std::string describe() const;  // "1.0.2 ×500, 1.1 ×500"

 private:
  std::vector<MixPart> parts_;
  std::uint8_t prefix_ = 0xBE;
  lorawan::JoinEui join_eui_;
  nsim::Key seed_;
};

/// The MAC version's byte in a bench DevEUI.
std::uint8_t version_code(lorawan::MacVersion v) noexcept;

struct ProvisionReport {
  std::uint64_t present = 0;
  std::uint64_t added = 0;
  double seconds = 0;
};

/// Adds the population's missing devices to the registry the way `device import` does:
/// make_device() checks each row, wrap_keys() has lorakeep-cs wrap the root keys (on
/// `jobs` connections at once), add_devices() commits batches of 5,000.
ProvisionReport provision(Context& ctx, const Options& o, const Population& population);

/// One join to send: which device, with which DevNonce.
struct JoinItem {
  std::uint32_t part = 0;
  std::uint64_t index = 0;
  std::uint16_t dev_nonce = 0;
};

/// Draws joins over the population: versions interleaved by weight, devices of each version
/// in a pseudo-random order that visits every device before any repeats; DevNonces valid for
/// each (the next counter value above the registry's, or a random one the device has not
/// used). Reads the nonce state of each device the first time it is drawn, from the registry
/// `registry()` returns then: the floor closes the registry before it forks, so the
/// scheduler must not keep a reference to it across draws.
class Scheduler {
 public:
  using RegistryAccess = std::function<host::registry::Registry&()>;
  Scheduler(const Population& population, RegistryAccess registry, std::uint64_t seed);
  std::vector<JoinItem> draw(std::uint64_t count);
  [[nodiscard]] std::uint64_t nonce_resets() const noexcept { return resets_; }

 private:
  struct DeviceState {
    bool counter = false;
    std::uint32_t next = 0;           // counter devices: the next DevNonce
    std::vector<std::uint16_t> used;  // random devices: history and this run's, sorted
  };
  std::uint16_t nonce_for(std::size_t part, std::uint64_t index);

  const Population& population_;
  RegistryAccess registry_;
  std::vector<std::uint64_t> drawn_;   // per part
  std::vector<std::uint64_t> stride_;  // per part, coprime with its size
  std::vector<std::uint64_t> offset_;  // per part
  std::vector<double> credit_;         // smooth weighted round robin
  std::map<std::uint64_t, DeviceState> state_;
  std::uint64_t rng_;
  std::uint64_t resets_ = 0;
};

// ---- the load (bench_load.cpp) ----

struct LoadTarget {
  const Population* population = nullptr;
  nsim::Url url;
  std::shared_ptr<nsim::TlsContext> ns_tls;
  std::shared_ptr<nsim::TlsContext> as_tls;  // null: no AppSKeyReq
  lorawan::NetId net_id;
  nsim::KeyExpectations keys;
  std::string as_id;
  std::chrono::milliseconds timeout{10000};
};

/// One request's outcome. Outcome 0 is "ok" (answered Success and every check held).
struct Sample {
  std::uint64_t start_us = 0;    // scheduled (fixed rate) or actual send time, from phase start
  std::uint32_t latency_us = 0;  // from `start_us` to the answer's last byte
  std::uint16_t outcome = 0;
  std::uint8_t part = 0;
};

struct PhaseResult {
  std::string name;
  std::size_t connections = 0;
  double rate = 0;
  double seconds = 0;  // first scheduled send to last answer
  std::vector<Sample> joins;
  std::vector<Sample> app_s_key_reqs;
  std::vector<std::string> outcomes;              // names by id; [0] = "ok"
  std::map<std::string, std::uint64_t> examples;  // a few distinct failure messages
  std::uint64_t connects = 0;
  std::uint64_t reconnects = 0;
};

/// Sends `items` on `connections` keep-alive connections, each its own thread: at `rate`
/// joins/s with each join's latency counted from its scheduled time (no coordinated
/// omission), or back to back when `rate` is 0. Verifies every answer (nsim); a fraction
/// `app_s_key_req` of successful joins is followed by an AppSKeyReq as the AS.
PhaseResult run_phase(const LoadTarget& target, const std::string& name,
                      const std::vector<JoinItem>& items, std::size_t connections, double rate,
                      double app_s_key_req);

// ---- statistics (bench_stats.cpp) ----

struct OpStats {
  std::uint64_t count = 0;
  std::uint64_t latency_us_sum = 0;
  std::uint64_t token_us_sum = 0;
  std::uint64_t pkcs11_calls = 0;
  std::uint64_t crypto_calls = 0;
};

struct ApplianceSnapshot {
  std::map<std::string, std::map<std::string, OpStats>> ops;  // operation → result → stats
  std::uint64_t pkcs11_calls_total = 0;
  std::uint32_t sessions_capacity = 0;
  std::uint64_t session_timeouts = 0;
  std::uint64_t token_reinitializations = 0;
};

/// A StatsOp through the appliance client; nullopt (and a warning) when it fails.
std::optional<ApplianceSnapshot> appliance_stats(host::ApplianceClient& client);
/// What the appliance did between two snapshots, per operation with result OK: count,
/// latency per operation, PKCS#11 and crypto calls per operation.
nlohmann::json appliance_delta(const ApplianceSnapshot& before, const ApplianceSnapshot& after);

/// CPU seconds (user + system) of `pid` and every descendant still alive; 0 if none.
double tree_cpu_seconds(int pid);
/// CPU seconds of this process (every thread).
double self_cpu_seconds();
/// lscpu-like facts, memory, kernel, load average.
nlohmann::json machine();
/// The CPUs each process may run on (Cpus_allowed_list): the bench, and lorakeep-cs and
/// lorakeep-js when their pids are known (> 0).
nlohmann::json cpu_affinity(int cs_pid, int js_pid);
/// The 1-minute load average.
double load_average();

// ---- the floor (bench_floor.cpp) ----

/// Replays joins of the population's first devices straight against the configured token
/// (appliance::join(), as lorakeep-cs runs it, same wrapped root keys and KEK deliveries),
/// in `processes` processes at once, each as appliance.user. No network, JSON or registry.
/// With a `gap`, each process sleeps that long before each join (not timed): the floor paced
/// like a calibration, whose worker idles between joins while the rest of the round trip
/// runs elsewhere.
nlohmann::json run_floor(Context& ctx, const Options& o, const Population& population,
                         const nsim::KeyExpectations& keys, unsigned processes, std::uint64_t joins,
                         std::chrono::microseconds gap = {});

// ---- reporting (bench_report.cpp) ----

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // milliseconds
  std::size_t count = 0;
};
Percentiles percentiles(std::vector<std::uint32_t> latencies_us);
nlohmann::json to_json(const Percentiles& p);
/// A phase's figures; with `detail` also its timeline, histogram and latency samples.
nlohmann::json phase_json(const PhaseResult& r, const Population& population, bool detail);
/// The one-screen summary of a report.
void print_summary(const nlohmann::json& report);

}  // namespace lorakeep::ctl::bench
