// The load: N keep-alive mTLS connections, one thread each, taking joins from one shared
// schedule. Fixed rate is open loop: join k is due at t0 + k/rate and its latency runs from
// then, so a slow answer that delays the joins behind it shows in their latency too (no
// coordinated omission). Every answer is judged by tools/nsim before it counts as a success.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tools/ctl/bench.hpp"

namespace lorakeep::ctl::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t max_examples = 20;

/// Outcome names shared by the workers; touched only when a request did not succeed.
class Outcomes {
 public:
  Outcomes() { names_.emplace_back("ok"); }
  std::uint16_t id(const std::string& name, const std::string& example) {
    const std::lock_guard lock(mutex_);
    if (!example.empty()) {
      if (auto it = examples_.find(example); it != examples_.end()) {
        ++it->second;
      } else if (examples_.size() < max_examples) {
        examples_.emplace(example, 1);
      }
    }
    for (std::size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return static_cast<std::uint16_t>(i);
    }
    names_.push_back(name);
    return static_cast<std::uint16_t>(names_.size() - 1);
  }
  void take(PhaseResult& r) {
    const std::lock_guard lock(mutex_);
    r.outcomes = names_;
    r.examples = examples_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> names_;
  std::map<std::string, std::uint64_t> examples_;
};

std::uint64_t next_random(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

/// Everything a failed exchange can be, as one outcome name and an example message.
std::uint16_t classify(Outcomes& outcomes, const Result<nsim::HttpResponse>& response,
                       const std::optional<nsim::Answer>& answer, const nsim::JoinVerdict* verdict,
                       const std::string& parse_error) {
  if (!response) return outcomes.id("no answer", response.failure().message);
  if (response->status != 200) {
    return outcomes.id("HTTP " + std::to_string(response->status), response->body.substr(0, 200));
  }
  if (!answer) return outcomes.id("unreadable answer", parse_error);
  if (answer->result_code != "Success") {
    return outcomes.id(answer->result_code.empty() ? "no Result" : answer->result_code,
                       answer->result_code + ": " + answer->description);
  }
  for (const auto& c : verdict->checks) {
    if (!c.ok) return outcomes.id("wrong answer: " + c.name, c.name + ": " + c.detail);
  }
  return 0;
}

}  // namespace

PhaseResult run_phase(const LoadTarget& target, const std::string& name,
                      const std::vector<JoinItem>& items, std::size_t connections, double rate,
                      double app_s_key_req) {
  PhaseResult result;
  result.name = name;
  result.connections = connections = std::max<std::size_t>(1, std::min(connections, items.size()));
  result.rate = rate;
  if (items.empty()) return result;

  Outcomes outcomes;
  std::atomic<std::size_t> next{0};
  std::mutex start_mutex;
  std::condition_variable start_cv;
  std::size_t connected = 0;
  bool go = false;
  Clock::time_point t0;

  struct PerWorker {
    std::vector<Sample> joins;
    std::vector<Sample> app_s_key_reqs;
    Clock::time_point last_answer;
    nsim::ClientCounters counters;
  };
  std::vector<PerWorker> per(connections);
  std::vector<std::thread> threads;
  threads.reserve(connections);
  for (std::size_t w = 0; w < connections; ++w) {
    threads.emplace_back([&, w] {
      PerWorker& mine = per[w];
      mine.joins.reserve(items.size() / connections + 16);
      nsim::HttpsClient ns(target.ns_tls, target.url, target.timeout);
      std::optional<nsim::HttpsClient> as;
      if (target.as_tls && app_s_key_req > 0) as.emplace(target.as_tls, target.url, target.timeout);
      // Connections are opened before the clock starts, as a Network Server keeps them.
      (void)ns.connect();
      if (as) (void)as->connect();
      {
        std::unique_lock lock(start_mutex);
        ++connected;
        start_cv.notify_all();
        start_cv.wait(lock, [&] { return go; });
      }
      std::this_thread::sleep_until(t0);  // every clock starts at t0, also at max concurrency
      std::uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (w + 1) * 0xBF58476D1CE4E5B9ULL;
      for (;;) {
        const std::size_t k = next.fetch_add(1);
        if (k >= items.size()) break;
        const JoinItem& item = items[k];
        Clock::time_point start;
        if (rate > 0) {
          start = t0 + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(static_cast<double>(k) / rate));
          std::this_thread::sleep_until(start);
        } else {
          start = Clock::now();
        }
        const nsim::Device device = target.population->device(item.part, item.index);
        const auto dev_addr = lorawan::DevAddr::from_uint(0x26000000U | (k & 0xFFFFFFU));
        const nsim::JoinReq request = nsim::make_join_req(
            device, item.dev_nonce, target.net_id, dev_addr, static_cast<std::uint32_t>(k + 1));
        const auto response = ns.post(request.json());
        const Clock::time_point end = Clock::now();

        std::optional<nsim::Answer> answer;
        std::string parse_error;
        nsim::JoinVerdict verdict;
        if (response && response->status == 200) {
          auto parsed = nsim::parse_answer(response->body);
          if (parsed) {
            answer = std::move(*parsed);
            verdict =
                nsim::verify_join_answer(device, item.dev_nonce, request, *answer, target.keys);
          } else {
            parse_error = parsed.failure().message;
          }
        }
        const std::uint16_t outcome = classify(outcomes, response, answer, &verdict, parse_error);
        mine.joins.push_back(
            {static_cast<std::uint64_t>(
                 std::chrono::duration_cast<std::chrono::microseconds>(start - t0).count()),
             static_cast<std::uint32_t>(
                 std::chrono::duration_cast<std::chrono::microseconds>(end - start).count()),
             outcome, static_cast<std::uint8_t>(item.part)});
        mine.last_answer = end;

        if (outcome != 0 || !as || !target.keys.as_kek) continue;
        if (static_cast<double>(next_random(rng) % 1000000) >= app_s_key_req * 1e6) continue;
        nsim::AppSKeyReq req;
        req.protocol_version = request.protocol_version;
        req.as_id = target.as_id;
        req.join_eui = device.join_eui;
        req.transaction_id = static_cast<std::uint32_t>(k + 1);
        req.dev_eui = device.dev_eui;
        req.session_key_id = answer->session_key_id;
        const auto keys = nsim::derive_session_keys(device, verdict.accept->fields, item.dev_nonce);
        const Clock::time_point as_start = Clock::now();
        const auto as_response = as->post(req.json());
        const Clock::time_point as_end = Clock::now();
        std::optional<nsim::Answer> as_answer;
        nsim::JoinVerdict as_verdict;
        std::string as_error;
        if (as_response && as_response->status == 200) {
          auto parsed = nsim::parse_answer(as_response->body);
          if (parsed) {
            as_answer = std::move(*parsed);
            as_verdict =
                nsim::verify_app_s_key_answer(req, *as_answer, *target.keys.as_kek, keys.app_s_key);
          } else {
            as_error = parsed.failure().message;
          }
        }
        mine.app_s_key_reqs.push_back(
            {static_cast<std::uint64_t>(
                 std::chrono::duration_cast<std::chrono::microseconds>(as_start - t0).count()),
             static_cast<std::uint32_t>(
                 std::chrono::duration_cast<std::chrono::microseconds>(as_end - as_start).count()),
             classify(outcomes, as_response, as_answer, &as_verdict, as_error),
             static_cast<std::uint8_t>(item.part)});
        mine.last_answer = as_end;
      }
      mine.counters = ns.counters();
      if (as) {
        mine.counters.connects += as->counters().connects;
        mine.counters.reconnects += as->counters().reconnects;
      }
    });
  }
  {
    std::unique_lock lock(start_mutex);
    start_cv.wait(lock, [&] { return connected == connections; });
    t0 = Clock::now() + std::chrono::milliseconds(5);
    go = true;
  }
  start_cv.notify_all();
  for (auto& t : threads)
    t.join();

  Clock::time_point last = t0;
  for (auto& p : per) {
    result.joins.insert(result.joins.end(), p.joins.begin(), p.joins.end());
    result.app_s_key_reqs.insert(result.app_s_key_reqs.end(), p.app_s_key_reqs.begin(),
                                 p.app_s_key_reqs.end());
    last = std::max(last, p.last_answer);
    result.connects += p.counters.connects;
    result.reconnects += p.counters.reconnects;
  }
  std::sort(result.joins.begin(), result.joins.end(),
            [](const Sample& a, const Sample& b) { return a.start_us < b.start_us; });
  result.seconds = std::chrono::duration<double>(last - t0).count();
  outcomes.take(result);
  return result;
}

}  // namespace lorakeep::ctl::bench
