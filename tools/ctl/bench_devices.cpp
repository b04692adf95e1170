// The bench's devices: their DevEUIs and seeded keys, their provisioning through the same
// path as `lorakeepctl device import`, and the schedule of joins with valid DevNonces.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#include "tools/ctl/bench.hpp"
#include "tools/ctl/device_spec.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/progress.hpp"

namespace lorakeep::ctl::bench {
namespace reg = host::registry;

namespace {

constexpr std::uint64_t index_limit = std::uint64_t{1} << 48;
constexpr std::size_t commit_batch = 5000;

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// Hex of a key straight into wiped memory: no plain std::string copy of it is left behind.
WipedString hex_field(const nsim::Key& key) {
  static constexpr std::string_view digits = "0123456789ABCDEF";
  WipedString s(2 * key.size());
  for (const std::uint8_t b : key.reveal()) {
    s.str().push_back(digits[b >> 4]);
    s.str().push_back(digits[b & 0x0F]);
  }
  return s;
}

WipedString text_field(std::string_view text) {
  WipedString s(text.size());
  s.str().append(text);
  return s;
}

}  // namespace

std::uint8_t version_code(lorawan::MacVersion v) noexcept {
  switch (v) {
    case lorawan::MacVersion::v1_0:
      return 0x00;
    case lorawan::MacVersion::v1_0_1:
      return 0x01;
    case lorawan::MacVersion::v1_0_2:
      return 0x02;
    case lorawan::MacVersion::v1_0_3:
      return 0x03;
    case lorawan::MacVersion::v1_0_4:
      return 0x04;
    case lorawan::MacVersion::v1_1:
      return 0x11;
  }
  return 0xFF;
}

Population::Population(const Options& o, const nsim::Key& seed) : seed_(seed) {
  auto join_eui = lorawan::JoinEui::from_hex(o.join_eui);
  if (!join_eui) throw CtlError(Exit::usage, "--join-eui: " + join_eui.failure().message);
  join_eui_ = *join_eui;
  auto prefix = lorawan::decode_hex(o.eui_prefix, "--eui-prefix");
  if (!prefix || prefix->size() != 1) {
    throw CtlError(Exit::usage, "--eui-prefix: one byte in hex (2 digits)");
  }
  prefix_ = static_cast<std::uint8_t>((*prefix)[0]);
  // "1.0.2:1,1.0.4:1,1.1:2" or "1.1".
  std::stringstream in(o.mix);
  std::string item;
  unsigned total = 0;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    MixPart p;
    const std::size_t colon = item.find(':');
    auto version = lorawan::parse_mac_version(item.substr(0, colon));
    if (!version) throw CtlError(Exit::usage, "--mix: " + version.failure().message);
    p.version = *version;
    if (colon != std::string::npos) {
      try {
        const unsigned long w = std::stoul(item.substr(colon + 1));
        if (w == 0 || w > 1000) throw std::out_of_range("weight");
        p.weight = static_cast<unsigned>(w);
      } catch (const std::exception&) {
        throw CtlError(Exit::usage, "--mix: weight of " + item + ": 1 to 1000");
      }
    }
    for (const auto& q : parts_) {
      if (version_code(q.version) == version_code(p.version)) {
        throw CtlError(Exit::usage, "--mix: " + item.substr(0, colon) + " given twice");
      }
    }
    total += p.weight;
    parts_.push_back(p);
  }
  if (parts_.empty()) throw CtlError(Exit::usage, "--mix: no MAC version (e.g. 1.0.2:1,1.1:2)");
  if (o.devices < parts_.size() || o.devices >= index_limit) {
    throw CtlError(Exit::usage, "--devices: at least one per MAC version of --mix");
  }
  std::uint64_t given = 0;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    auto& p = parts_[i];
    p.devices = i + 1 == parts_.size() ? o.devices - given : o.devices * p.weight / total;
    p.devices = std::max<std::uint64_t>(p.devices, 1);
    given += p.devices;
  }
}

lorawan::DevEui Population::dev_eui(std::size_t part, std::uint64_t index) const {
  const std::uint64_t v = (static_cast<std::uint64_t>(prefix_) << 56) |
                          (static_cast<std::uint64_t>(version_code(parts_[part].version)) << 48) |
                          (index & (index_limit - 1));
  return lorawan::DevEui::from_uint(v);
}

nsim::Device Population::device(std::size_t part, std::uint64_t index) const {
  nsim::Device d;
  d.mac_version = parts_[part].version;
  d.join_eui = join_eui_;
  d.dev_eui = dev_eui(part, index);
  d.app_key = nsim::seeded_key(seed_, 0x01, d.dev_eui);
  if (lorawan::is_1_1(d.mac_version)) d.nwk_key = nsim::seeded_key(seed_, 0x02, d.dev_eui);
  return d;
}

std::string Population::describe() const {
  std::string out;
  for (const auto& p : parts_) {
    if (!out.empty()) out += ", ";
    out += std::string(lorawan::mac_version_name(p.version)) + " x" + thousands(p.devices);
  }
  return out;
}

// ---- provisioning ----

ProvisionReport provision(Context& ctx, const Options& o, const Population& population) {
  const auto start = std::chrono::steady_clock::now();
  ProvisionReport report;
  auto& registry = ctx.registry(8);

  // Which devices are there already: one ordered scan per version's DevEUI range.
  struct Missing {
    std::uint32_t part;
    std::uint64_t index;
  };
  std::vector<Missing> missing;
  for (std::size_t p = 0; p < population.parts().size(); ++p) {
    const std::uint64_t n = population.parts()[p].devices;
    std::vector<bool> present(n, false);
    const std::uint64_t first = population.dev_eui(p, 0).to_uint();
    std::optional<lorawan::DevEui> after;
    if (first > 0) after = lorawan::DevEui::from_uint(first - 1);
    for (;;) {
      const auto page = must(registry.list_devices(after, 10000), "listing the registry");
      bool beyond = page.empty();
      for (const auto& d : page) {
        const std::uint64_t v = d.dev_eui.to_uint();
        if (v >= first + n) {
          beyond = true;
          break;
        }
        present[v - first] = true;
      }
      if (beyond || page.size() < 10000) break;
      after = page.back().dev_eui;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      if (present[i]) {
        ++report.present;
      } else {
        missing.push_back({static_cast<std::uint32_t>(p), i});
      }
    }
  }
  if (missing.empty()) {
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
  }

  const auto net_id = lorawan::NetId::from_hex(o.net_id);
  if (!net_id) throw CtlError(Exit::usage, "--net-id: " + net_id.failure().message);
  auto& client = ctx.appliance(o.provision_jobs);
  const auto deadline = ctx.appliance_deadline();
  std::cerr << "lorakeepctl: bench: provisioning " << thousands(missing.size()) << " devices ("
            << thousands(report.present) << " already in the registry)\n";

  std::mutex mutex;
  std::condition_variable wake;
  std::vector<reg::Device> ready;
  std::optional<Failure> failure;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::size_t running = std::min(o.provision_jobs, missing.size());
  std::vector<std::thread> pool;
  pool.reserve(running);
  for (std::size_t t = 0, n = running; t < n; ++t) {
    pool.emplace_back([&] {
      for (;;) {
        {
          const std::lock_guard lock(mutex);
          if (failure) break;
        }
        const std::size_t k = next.fetch_add(1);
        if (k >= missing.size()) break;
        const nsim::Device d = population.device(missing[k].part, missing[k].index);
        Fields fields;
        fields.emplace_back("dev_eui", text_field(d.dev_eui.hex()));
        fields.emplace_back("join_eui", text_field(d.join_eui.hex()));
        fields.emplace_back("mac_version", text_field(lorawan::mac_version_name(d.mac_version)));
        fields.emplace_back("app_key", hex_field(d.app_key));
        if (d.nwk_key) fields.emplace_back("nwk_key", hex_field(*d.nwk_key));
        fields.emplace_back("home_net_id", text_field(net_id->hex()));
        if (!o.as_id.empty()) fields.emplace_back("as_id", text_field(o.as_id));
        auto spec = make_device(fields);
        Result<Ok> wrapped =
            spec ? wrap_keys(client, ctx.actor(), deadline, *spec) : Result<Ok>(spec.failure());
        const std::lock_guard lock(mutex);
        if (!wrapped) {
          if (!failure) failure = wrapped.failure();
          break;
        }
        ready.push_back(std::move(spec->device));
        ++done;
        if (ready.size() >= commit_batch) wake.notify_all();
      }
      const std::lock_guard lock(mutex);
      --running;
      wake.notify_all();
    });
  }
  Progress progress(missing.size(), stderr_is_terminal());
  for (;;) {
    std::vector<reg::Device> batch;
    bool finished = false;
    {
      std::unique_lock lock(mutex);
      wake.wait_for(lock, std::chrono::milliseconds(250),
                    [&] { return running == 0 || ready.size() >= commit_batch; });
      finished = running == 0;
      batch.swap(ready);
    }
    for (std::size_t s = 0; s < batch.size(); s += commit_batch) {
      const std::vector<reg::Device> part(
          batch.begin() + static_cast<long>(s),
          batch.begin() + static_cast<long>(std::min(batch.size(), s + commit_batch)));
      const auto outcomes = must(registry.add_devices(part), "adding devices to the registry");
      for (const auto outcome : outcomes) {
        if (outcome == reg::AddOutcome::added) {
          ++report.added;
        } else {
          ++report.present;
        }
      }
    }
    progress.update(done.load());
    if (finished) break;
  }
  for (auto& t : pool)
    t.join();
  progress.finish();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ctx.audit("bench.provision", population.describe(),
            "added=" + std::to_string(report.added) + " present=" + std::to_string(report.present) +
                (failure ? " stopped" : ""));
  if (failure) {
    throw CtlError(exit_for(*failure), "provisioning stopped after " + thousands(report.added) +
                                           " devices: " + failure->message);
  }
  return report;
}

// ---- the schedule ----

Scheduler::Scheduler(const Population& population, RegistryAccess registry, std::uint64_t seed)
    : population_(population), registry_(std::move(registry)), rng_(seed) {
  for (const auto& p : population.parts()) {
    const std::uint64_t n = p.devices;
    std::uint64_t stride = 1;
    if (n > 2) {
      do {
        stride = splitmix(rng_) % n;
      } while (stride < 2 || std::gcd(stride, n) != 1);
    }
    stride_.push_back(stride);
    offset_.push_back(splitmix(rng_) % n);
    drawn_.push_back(0);
    credit_.push_back(0);
  }
}

std::uint16_t Scheduler::nonce_for(std::size_t part, std::uint64_t index) {
  const std::uint64_t id = (static_cast<std::uint64_t>(part) << 48) | index;
  auto it = state_.find(id);
  if (it == state_.end()) {
    const auto eui = population_.dev_eui(part, index);
    auto state = must(registry_().nonce_state(eui), "reading nonce state");
    if (!state) {
      throw CtlError(Exit::not_found,
                     "device " + eui.hex() + " is not in the registry: run bench with --provision");
    }
    DeviceState s;
    s.counter = lorawan::dev_nonce_is_counter(population_.parts()[part].version);
    if (s.counter) {
      s.next = state->dev_nonce_last ? std::uint32_t{*state->dev_nonce_last} + 1 : 1;
      if (s.next > 0xFFF0) {
        // This device has used nearly every DevNonce in earlier runs: an operator reset
        // (audited in the registry like `device reset-nonces`).
        (void)must(registry_().reset_nonces(eui), "resetting the nonces of " + eui.hex());
        s.next = 1;
        ++resets_;
      }
    } else {
      s.used = state->dev_nonce_history;
      std::sort(s.used.begin(), s.used.end());
    }
    it = state_.emplace(id, std::move(s)).first;
  }
  DeviceState& s = it->second;
  if (s.counter) {
    if (s.next > 0xFFFF) {
      throw CtlError(Exit::usage, "more joins per device than DevNonces: use more --devices");
    }
    return static_cast<std::uint16_t>(s.next++);
  }
  if (s.used.size() > 60000) {
    throw CtlError(Exit::usage, "more joins per device than DevNonces: use more --devices");
  }
  for (;;) {
    const auto n = static_cast<std::uint16_t>(splitmix(rng_));
    const auto pos = std::lower_bound(s.used.begin(), s.used.end(), n);
    if (pos != s.used.end() && *pos == n) continue;
    s.used.insert(pos, n);
    return n;
  }
}

std::vector<JoinItem> Scheduler::draw(std::uint64_t count) {
  const auto& parts = population_.parts();
  double total = 0;
  for (const auto& p : parts)
    total += p.weight;
  std::vector<JoinItem> items;
  items.reserve(count);
  for (std::uint64_t k = 0; k < count; ++k) {
    std::size_t pick = 0;
    for (std::size_t p = 0; p < parts.size(); ++p) {
      credit_[p] += parts[p].weight;
      if (credit_[p] > credit_[pick]) pick = p;
    }
    credit_[pick] -= total;
    // Stepping by a stride coprime with the size visits every device once per round.
    const std::uint64_t index = offset_[pick];
    offset_[pick] = (offset_[pick] + stride_[pick]) % parts[pick].devices;
    ++drawn_[pick];
    items.push_back({static_cast<std::uint32_t>(pick), index, nonce_for(pick, index)});
  }
  return items;
}

}  // namespace lorakeep::ctl::bench
