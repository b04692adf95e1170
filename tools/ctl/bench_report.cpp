// Turning samples into figures: exact percentiles, per-second timelines, a latency
// histogram, a subsample for plots, and the one-screen summary.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "tools/ctl/bench.hpp"
#include "tools/ctl/output.hpp"

namespace lorakeep::ctl::bench {
namespace {

constexpr std::size_t max_plot_samples = 20000;

double ms(double us) {
  return us / 1000.0;
}

std::string fixed(double v, int decimals) {
  std::array<char, 64> buf{};
  std::snprintf(buf.data(), buf.size(), "%.*f", decimals, v);
  return buf.data();
}

/// Log-spaced bounds from 50 µs to 30 s, 12 a decade.
std::vector<double> histogram_bounds_ms() {
  std::vector<double> b;
  for (double x = 0.05; x < 30000; x *= std::pow(10.0, 1.0 / 12))
    b.push_back(x);
  return b;
}

nlohmann::json figures(const std::vector<Sample>& samples, const PhaseResult& r, double seconds) {
  std::vector<std::uint32_t> ok;
  std::vector<std::uint32_t> all;
  std::map<std::string, std::uint64_t> errors;
  ok.reserve(samples.size());
  all.reserve(samples.size());
  for (const auto& s : samples) {
    all.push_back(s.latency_us);
    if (s.outcome == 0) {
      ok.push_back(s.latency_us);
    } else {
      ++errors[r.outcomes[s.outcome]];
    }
  }
  const std::size_t n_ok = ok.size();
  return {{"requests", samples.size()},
          {"ok", n_ok},
          {"errors", errors},
          {"ok_per_s", seconds > 0 ? static_cast<double>(n_ok) / seconds : 0},
          {"latency_ms", to_json(percentiles(std::move(ok)))},
          {"latency_all_ms", to_json(percentiles(std::move(all)))}};
}

}  // namespace

Percentiles percentiles(std::vector<std::uint32_t> latencies_us) {
  Percentiles p;
  p.count = latencies_us.size();
  if (latencies_us.empty()) return p;
  std::sort(latencies_us.begin(), latencies_us.end());
  const auto at = [&](double q) {
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(p.count)));
    return ms(latencies_us[std::clamp<std::size_t>(rank, 1, p.count) - 1]);
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.p999 = at(0.999);
  p.max = ms(latencies_us.back());
  p.mean = ms(std::accumulate(latencies_us.begin(), latencies_us.end(), 0.0) /
              static_cast<double>(p.count));
  return p;
}

nlohmann::json to_json(const Percentiles& p) {
  return {{"count", p.count}, {"p50", p.p50}, {"p90", p.p90},  {"p99", p.p99},
          {"p999", p.p999},   {"max", p.max}, {"mean", p.mean}};
}

nlohmann::json phase_json(const PhaseResult& r, const Population& population, bool detail) {
  nlohmann::json j = figures(r.joins, r, r.seconds);
  j["name"] = r.name;
  j["connections"] = r.connections;
  j["rate_target"] = r.rate;
  j["seconds"] = r.seconds;
  j["connects"] = r.connects;
  j["reconnects"] = r.reconnects;
  j["error_examples"] = r.examples;
  nlohmann::json by_version = nlohmann::json::object();
  for (std::size_t p = 0; p < population.parts().size(); ++p) {
    std::vector<Sample> mine;
    for (const auto& s : r.joins) {
      if (s.part == p) mine.push_back(s);
    }
    by_version[std::string(lorawan::mac_version_name(population.parts()[p].version))] =
        figures(mine, r, r.seconds);
  }
  j["by_version"] = by_version;
  if (!r.app_s_key_reqs.empty()) j["app_s_key_req"] = figures(r.app_s_key_reqs, r, r.seconds);
  if (!detail) return j;

  // Per second of completion: answers, failures, latency percentiles.
  const auto seconds = static_cast<std::size_t>(std::ceil(r.seconds)) + 1;
  std::vector<std::vector<std::uint32_t>> per(seconds);
  std::vector<std::uint64_t> failed(seconds, 0);
  for (const auto& s : r.joins) {
    const auto t = std::min<std::size_t>(seconds - 1, (s.start_us + s.latency_us) / 1000000);
    if (s.outcome == 0) {
      per[t].push_back(s.latency_us);
    } else {
      ++failed[t];
    }
  }
  nlohmann::json timeline = nlohmann::json::array();
  for (std::size_t t = 0; t < seconds; ++t) {
    const Percentiles p = percentiles(per[t]);
    timeline.push_back({{"t", t},
                        {"ok", p.count},
                        {"errors", failed[t]},
                        {"p50_ms", p.p50},
                        {"p99_ms", p.p99},
                        {"max_ms", p.max}});
  }
  j["timeline"] = timeline;

  const auto bounds = histogram_bounds_ms();
  std::vector<std::uint64_t> counts(bounds.size() + 1, 0);
  for (const auto& s : r.joins) {
    if (s.outcome != 0) continue;
    const double v = ms(s.latency_us);
    const auto b = static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) -
                                            bounds.begin());
    ++counts[b];
  }
  j["histogram"] = {{"upper_bounds_ms", bounds}, {"counts", counts}};

  const std::size_t step = std::max<std::size_t>(1, r.joins.size() / max_plot_samples);
  nlohmann::json samples = nlohmann::json::array();
  for (std::size_t i = 0; i < r.joins.size(); i += step) {
    const Sample& s = r.joins[i];
    samples.push_back({static_cast<double>(s.start_us) / 1e6, ms(s.latency_us), s.outcome == 0});
  }
  j["samples"] = {{"every", step}, {"columns", {"start_s", "latency_ms", "ok"}}, {"rows", samples}};
  return j;
}

void print_summary(const nlohmann::json& report) {
  std::cout << "bench " << report.value("label", std::string()) << "\n";
  std::cout << "  devices: " << report["devices"]["population"].get<std::string>() << "; "
            << thousands(report["devices"]["registry"].get<std::uint64_t>())
            << " in the registry\n";
  if (report.contains("provisioning")) {
    const auto& p = report["provisioning"];
    std::cout << "  provisioned " << thousands(p["added"].get<std::uint64_t>()) << " devices in "
              << fixed(p["seconds"].get<double>(), 1) << " s\n";
  }
  const auto phase_line = [](const nlohmann::json& ph) {
    const auto& l = ph["latency_ms"];
    std::string errors;
    for (const auto& [name, count] : ph["errors"].items()) {
      errors +=
          (errors.empty() ? "" : ", ") + name + " " + std::to_string(count.get<std::uint64_t>());
    }
    std::cout << "  " << ph["name"].get<std::string>() << ": "
              << thousands(ph["ok"].get<std::uint64_t>()) << " ok of "
              << thousands(ph["requests"].get<std::uint64_t>()) << " joins in "
              << fixed(ph["seconds"].get<double>(), 2)
              << " s = " << fixed(ph["ok_per_s"].get<double>(), 0) << " joins/s ("
              << ph["connections"].get<std::size_t>() << " connections"
              << (ph["rate_target"].get<double>() > 0
                      ? ", fixed rate " + fixed(ph["rate_target"].get<double>(), 0) + "/s"
                      : ", max concurrency")
              << ")\n    latency ms p50 " << fixed(l["p50"].get<double>(), 2) << "  p90 "
              << fixed(l["p90"].get<double>(), 2) << "  p99 " << fixed(l["p99"].get<double>(), 2)
              << "  max " << fixed(l["max"].get<double>(), 2)
              << (errors.empty() ? "" : "\n    errors: " + errors) << "\n";
    if (ph.contains("app_s_key_req")) {
      const auto& a = ph["app_s_key_req"];
      std::cout << "    AppSKeyReq: " << thousands(a["ok"].get<std::uint64_t>()) << " ok of "
                << thousands(a["requests"].get<std::uint64_t>()) << ", p50 "
                << fixed(a["latency_ms"]["p50"].get<double>(), 2) << " ms, p99 "
                << fixed(a["latency_ms"]["p99"].get<double>(), 2) << " ms\n";
    }
  };
  for (const char* name : {"calibration", "load"}) {
    if (report.contains(name)) phase_line(report[name]);
  }
  if (report.contains("appliance")) {
    for (const auto& [op, s] : report["appliance"]["ok_operations"].items()) {
      if (op.rfind("join", 0) != 0) continue;
      std::cout << "  appliance " << op
                << " under load: " << fixed(s["latency_us_per_op"].get<double>(), 0)
                << " µs per join (queueing "
                << "for a session included), " << fixed(s["pkcs11_calls_per_op"].get<double>(), 1)
                << " PKCS#11 calls, " << fixed(s["crypto_calls_per_op"].get<double>(), 1)
                << " crypto calls per join\n";
    }
  }
  if (report.contains("cpu")) {
    const auto& c = report["cpu"];
    std::cout << "  CPU per join: lorakeep-cs " << fixed(c["cs_us_per_join"].get<double>(), 0)
              << " µs, lorakeep-js " << fixed(c["js_us_per_join"].get<double>(), 0) << " µs, bench "
              << fixed(c["bench_us_per_join"].get<double>(), 0) << " µs; cores busy "
              << fixed(c["cores_busy"].get<double>(), 2) << "\n";
  }
  if (report.contains("floor")) {
    for (const auto& f : report["floor"]) {
      std::cout << "  floor (" << f["processes"].get<std::size_t>() << " process"
                << (f["processes"].get<std::size_t>() == 1 ? "" : "es")
                << "): " << fixed(f["joins_per_s"].get<double>(), 0) << " joins/s, "
                << fixed(f["us_per_join"].get<double>(), 0) << " µs per join; answers verified "
                << f["answers_verified"].get<std::uint64_t>() << "/"
                << f["answers_checked"].get<std::uint64_t>() << "\n";
      for (const auto& [v, pv] : f["per_version"].items()) {
        const auto& c = pv["calls_per_join"];
        if (c.is_null()) continue;
        std::cout << "    " << v << ": " << fixed(pv["us_per_join"].get<double>(), 0) << " µs, "
                  << c["total"].get<std::uint64_t>() << " PKCS#11 calls, "
                  << c["crypto_without_unwrap"].get<std::uint64_t>() << " crypto calls besides "
                  << c["unwrap"].get<std::uint64_t>() << " root-key unwrap(s)\n";
      }
    }
  }
  if (report.contains("rounds")) {
    for (const std::string op : {"join_1_0", "join_1_1"}) {
      std::string line;
      for (const auto& round : report["rounds"]) {
        if (!round.contains(op + "_appliance_over_floor")) continue;
        line += " " + fixed(round[op + "_appliance_over_floor"].get<double>(), 2);
      }
      if (!line.empty()) {
        std::cout << "  " << op << " appliance ÷ floor, round by round:" << line << "\n";
      }
      std::string paced;
      for (const auto& round : report["rounds"]) {
        if (!round.contains(op + "_appliance_over_paced_floor")) continue;
        paced += " " + fixed(round[op + "_appliance_over_paced_floor"].get<double>(), 2);
      }
      if (!paced.empty()) {
        std::cout << "  " << op
                  << " appliance ÷ floor paced like the calibration, round by round:" << paced
                  << "\n";
      }
    }
  }
  if (report.contains("service_vs_floor")) {
    const auto& r = report["service_vs_floor"];
    for (const auto& [k, v] : r.items()) {
      if (v.is_number()) std::cout << "  " << k << ": " << fixed(v.get<double>(), 2) << "\n";
    }
  }
}

}  // namespace lorakeep::ctl::bench
