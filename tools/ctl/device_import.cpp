#include "tools/ctl/device_import.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tools/ctl/device_spec.hpp"
#include "tools/ctl/output.hpp"
#include "tools/ctl/progress.hpp"
#include "tools/ctl/rows.hpp"
#include "tools/ctl/secret_input.hpp"

namespace lorakeep::ctl {
namespace reg = host::registry;

namespace {

constexpr std::size_t max_file_bytes = std::size_t{4} << 30;  // 4 GiB
constexpr int exit_interrupted = 130;                         // 128 + SIGINT, as shells do

struct ImportOptions {
  std::string file;
  std::string format = "auto";
  std::size_t jobs = 16;
  std::size_t batch = 5000;
};

enum class State : std::uint8_t { pending, rejected, present, ready, added, not_imported };

struct Item {
  std::size_t line = 0;
  State state = State::pending;
  std::string dev_eui;  // upper-case hex, once known
  std::string reason;   // rejected: why
  std::optional<DeviceSpec> spec;
};

// SIGINT/SIGTERM during an import: stop handing out rows, add what is wrapped, report.
std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int /*signal*/) {
  interrupted.store(true);
}

class InterruptScope {
 public:
  InterruptScope() {
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~InterruptScope() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  InterruptScope(InterruptScope&&) = delete;
  InterruptScope& operator=(InterruptScope&&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

/// Parses the file into items; every row is either pending (a valid device) or rejected.
std::vector<Item> parse_file(const ImportOptions& o, Format& format) {
  std::vector<Item> items;
  const SecretText text = SecretText::read(o.file, max_file_bytes);
  if (o.format == "auto") {
    format = detect_format(o.file, text.view());
  } else {
    format = o.format == "csv" ? Format::csv : Format::jsonl;
  }
  std::unordered_map<std::uint64_t, std::size_t> first_line;
  read_rows(format, text.view(), o.file, [&](Row&& row) {
    Item it;
    it.line = row.line;
    if (row.error) {
      it.state = State::rejected;
      it.reason = *row.error;
    } else if (auto spec = make_device(row.fields); !spec) {
      it.state = State::rejected;
      it.reason = spec.failure().message;
      // Which device it was, when that much can be read.
      for (const auto& [name, value] : row.fields) {
        if (name != "dev_eui") continue;
        if (auto eui = lorawan::DevEui::from_hex(value.view())) it.dev_eui = eui->hex();
      }
    } else {
      const auto& eui = spec->device.dev_eui;
      it.dev_eui = eui.hex();
      const auto [where, fresh] = first_line.emplace(eui.to_uint(), row.line);
      if (!fresh) {
        it.state = State::rejected;
        it.reason = "DevEUI " + it.dev_eui + " repeats line " + std::to_string(where->second);
      } else {
        it.spec = std::move(*spec);
      }
    }
    items.push_back(std::move(it));
  });
  return items;
}

struct Abort {
  std::mutex mutex;
  std::optional<Failure> failure;
  std::atomic<bool> stop{false};

  void set(Failure f) {
    const std::lock_guard lock(mutex);
    if (!failure) failure = std::move(f);
    stop.store(true);
  }
  [[nodiscard]] bool stopping() const { return stop.load() || interrupted.load(); }
};

class Importer {
 public:
  Importer(Context& ctx, const ImportOptions& o, std::vector<Item>& items)
      : ctx_(ctx), o_(o), items_(items) {}

  void run() {
    std::vector<std::size_t> work;
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].state == State::pending) work.push_back(i);
    }
    if (work.empty()) return;
    auto& registry = ctx_.registry(std::min<std::size_t>(o_.jobs, 8));
    const bool wraps = std::any_of(work.begin(), work.end(),
                                   [&](std::size_t i) { return items_[i].spec->needs_wrap(); });
    host::ApplianceClient* client = wraps ? &ctx_.appliance(o_.jobs) : nullptr;
    const auto deadline = wraps ? ctx_.appliance_deadline() : std::chrono::milliseconds(0);
    if (client != nullptr) {
      if (auto ready = appliance_ready(*client, ctx_.actor(), appliance_check_deadline); !ready) {
        abort_.set(fail(ready.failure().status, "lorakeep-cs: " + ready.failure().message));
        return;
      }
    }

    Progress progress(work.size(), stderr_is_terminal());
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> running{0};
    const std::size_t threads = std::min(o_.jobs, work.size());
    std::vector<std::thread> pool;
    pool.reserve(threads);
    running = threads;
    for (std::size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        for (;;) {
          if (abort_.stopping()) break;
          const std::size_t k = next.fetch_add(1);
          if (k >= work.size()) break;
          process(items_[work[k]], work[k], registry, client, deadline);
        }
        {
          const std::lock_guard lock(mutex_);
          --running;
        }
        wake_.notify_all();
      });
    }
    for (;;) {
      std::vector<std::size_t> batch;
      bool finished = false;
      {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(200));
        finished = running == 0;
        if (finished || ready_.size() >= o_.batch) batch.swap(ready_);
      }
      commit(batch, registry);
      progress.update(done_.load());
      if (finished) break;
    }
    for (auto& t : pool)
      t.join();
    std::vector<std::size_t> rest;
    {
      const std::lock_guard lock(mutex_);
      rest.swap(ready_);
    }
    commit(rest, registry);
    progress.finish();
    for (auto& it : items_) {
      if (it.state == State::pending) {
        it.state = State::not_imported;
        it.spec.reset();
      }
    }
  }

  [[nodiscard]] std::optional<Failure> failure() const { return abort_.failure; }

 private:
  void process(Item& it, std::size_t index, reg::Registry& registry, host::ApplianceClient* client,
               std::chrono::milliseconds deadline) {
    auto found = registry.find_device(it.spec->device.dev_eui);
    if (!found) {
      abort_.set(found.failure());
      return;
    }
    if (found->has_value()) {
      it.state = State::present;
      it.spec.reset();
      ++done_;
      return;
    }
    if (it.spec->needs_wrap()) {
      auto wrapped = wrap_keys(*client, ctx_.actor(), deadline, *it.spec);
      if (!wrapped) {
        // A key the appliance refuses is this row's problem; anything else (no answer, no
        // storage key, a policy refusal) would fail every row: stop.
        if (wrapped.failure().status != Status::malformed) {
          abort_.set(wrapped.failure());
          return;
        }
        it.state = State::rejected;
        it.reason = wrapped.failure().message;
        it.spec.reset();
        ++done_;
        return;
      }
    }
    {
      const std::lock_guard lock(mutex_);
      it.state = State::ready;
      ready_.push_back(index);
      if (ready_.size() >= o_.batch) wake_.notify_all();
    }
    ++done_;
  }

  void commit(std::vector<std::size_t>& batch, reg::Registry& registry) {
    for (std::size_t start = 0; start < batch.size(); start += o_.batch) {
      const std::size_t end = std::min(batch.size(), start + o_.batch);
      std::vector<reg::Device> devices;
      devices.reserve(end - start);
      for (std::size_t k = start; k < end; ++k)
        devices.push_back(items_[batch[k]].spec->device);
      auto outcomes = registry.add_devices(devices);
      for (std::size_t k = start; k < end; ++k) {
        Item& it = items_[batch[k]];
        it.spec.reset();
        if (!outcomes) {
          it.state = State::not_imported;
        } else {
          it.state =
              (*outcomes)[k - start] == reg::AddOutcome::added ? State::added : State::present;
        }
      }
      if (!outcomes) abort_.set(outcomes.failure());
    }
    batch.clear();
  }

  Context& ctx_;
  const ImportOptions& o_;
  std::vector<Item>& items_;
  Abort abort_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::size_t> ready_;
  std::atomic<std::size_t> done_{0};
};

int run_import(Context& ctx, const ImportOptions& o) {
  if (o.format != "auto" && o.format != "csv" && o.format != "jsonl") {
    throw CtlError(Exit::usage, "--format: auto, csv or jsonl");
  }
  (void)ctx.join_server_config();  // a broken configuration fails before the file is read
  const auto start = std::chrono::steady_clock::now();
  Format format = Format::csv;
  std::vector<Item> items = parse_file(o, format);

  interrupted.store(false);
  std::optional<Failure> failure;
  {
    const InterruptScope scope;
    Importer importer(ctx, o, items);
    importer.run();
    failure = importer.failure();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::size_t added = 0, present = 0, rejected = 0, not_imported = 0;
  for (const auto& it : items) {
    switch (it.state) {
      case State::added:
        ++added;
        break;
      case State::present:
        ++present;
        break;
      case State::rejected:
        ++rejected;
        break;
      default:
        ++not_imported;
    }
  }
  const double rate = seconds > 0 ? static_cast<double>(added + present) / seconds : 0;
  std::string stopped;
  if (failure) {
    stopped = failure->message;
  } else if (interrupted.load()) {
    stopped = "interrupted";
  }

  // The audit record goes in before the report: a failure to write it is the command's.
  std::optional<std::string> audit_problem;
  try {
    ctx.audit(
        "device.import", o.file,
        "format=" + std::string(format_name(format)) + " rows=" + std::to_string(items.size()) +
            " added=" + std::to_string(added) + " already_present=" + std::to_string(present) +
            " rejected=" + std::to_string(rejected) +
            " not_imported=" + std::to_string(not_imported) + (stopped.empty() ? "" : " stopped"));
  } catch (const std::exception& e) {
    audit_problem = e.what();
  }

  if (ctx.json()) {
    nlohmann::json rejections = nlohmann::json::array();
    nlohmann::json already = nlohmann::json::array();
    for (const auto& it : items) {
      if (it.state == State::rejected) {
        rejections.push_back(
            {{"line", it.line},
             {"dev_eui", it.dev_eui.empty() ? nlohmann::json() : nlohmann::json(it.dev_eui)},
             {"reason", it.reason}});
      } else if (it.state == State::present) {
        already.push_back({{"line", it.line}, {"dev_eui", it.dev_eui}});
      }
    }
    print_json({{"file", o.file},
                {"format", format_name(format)},
                {"rows", items.size()},
                {"added", added},
                {"already_present", present},
                {"rejected", rejected},
                {"not_imported", not_imported},
                {"seconds", seconds},
                {"rows_per_second", rate},
                {"stopped", stopped.empty() ? nlohmann::json() : nlohmann::json(stopped)},
                {"rejections", rejections},
                {"already_present_rows", already}});
  } else {
    for (const auto& it : items) {
      if (it.state == State::rejected) {
        std::cout << o.file << ":" << it.line << ": rejected: " << it.reason;
        if (!it.dev_eui.empty() && it.reason.find(it.dev_eui) == std::string::npos) {
          std::cout << " (DevEUI " << it.dev_eui << ")";
        }
        std::cout << "\n";
      } else if (it.state == State::present) {
        std::cout << o.file << ":" << it.line << ": already present: DevEUI " << it.dev_eui << "\n";
      }
    }
    std::array<char, 64> timing{};
    std::snprintf(timing.data(), timing.size(), "%.1f s, ", seconds);
    std::cout << o.file << " (" << format_name(format) << "): " << thousands(items.size())
              << " rows: " << thousands(added) << " added, " << thousands(present)
              << " already present, " << thousands(rejected) << " rejected";
    if (not_imported > 0) std::cout << ", " << thousands(not_imported) << " not imported";
    std::cout << " (" << timing.data() << thousands(static_cast<std::size_t>(rate)) << " rows/s)\n";
    if (!stopped.empty()) {
      std::cout << "import stopped: " << stopped
                << "\nrun the same import again to go on: rows already added are reported as "
                   "already present\n";
    }
  }
  std::cout.flush();
  if (audit_problem) throw CtlError(Exit::failure, *audit_problem);
  if (failure) {
    throw CtlError(failure->status == Status::token_unavailable ? Exit::unavailable : Exit::failure,
                   "import stopped: " + failure->message);
  }
  if (interrupted.load()) {
    std::cerr << "lorakeepctl: import interrupted\n";
    return exit_interrupted;
  }
  return rejected > 0 ? static_cast<int>(Exit::rejected_rows) : 0;
}

}  // namespace

void add_import_command(CLI::App& group, Context& ctx) {
  auto o = std::make_shared<ImportOptions>();
  auto* c = add_command(
      group, "import",
      "Add many devices from a CSV or JSON-lines file (the same fields as 'device add', keys as "
      "hex columns app_key/nwk_key). Rows already in the registry are reported, not changed; "
      "every rejected row is reported with its line and why (exit 6 when any was rejected)",
      "  lorakeepctl device import devices.csv\n"
      "  lorakeepctl device import devices.jsonl --json > report.json\n"
      "CSV:\n"
      "  dev_eui,join_eui,mac_version,app_key,nwk_key,home_net_id,as_id,allowed_net_ids\n"
      "  0004A30B001C0530,70B3D57ED0000000,1.0.3,<32 hex digits>,,000013,as.example.com,"
      "600010 600011\n"
      "JSON lines:\n"
      "  {\"dev_eui\":\"0004A30B001C0531\",\"join_eui\":\"70B3D57ED0000000\","
      "\"mac_version\":\"1.1\",\"app_key\":\"…\",\"nwk_key\":\"…\",\"home_net_id\":\"000013\"}");
  c->add_option("file", o->file, "The import file (CSV with a header line, or JSON lines)")
      ->required();
  c->add_option("--format", o->format, "auto (by extension, else content), csv or jsonl");
  c->add_option("--jobs", o->jobs, "Root keys wrapped at once (connections to lorakeep-cs)")
      ->check(CLI::Range(1, 256));
  c->add_option("--batch", o->batch, "Devices added to the registry per transaction")
      ->check(CLI::Range(1, 10000));
  on_parsed(c, ctx, o, &run_import);
}

}  // namespace lorakeep::ctl
