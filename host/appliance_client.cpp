#include "host/appliance_client.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <string>
#include <utility>

#include "schemas/frame.hpp"

namespace lorakeep::host {

namespace {

using std::chrono::milliseconds;

constexpr std::size_t max_connections_per_endpoint = 1024;
// As lorakeep-cs demands (docs/configuration.md): a shorter secret could not serve anyway.
constexpr std::size_t min_cluster_secret = 16;
constexpr milliseconds first_backoff{50};
constexpr milliseconds max_backoff{1000};
// An appliance that says SHUTTING_DOWN gets no new request from us for this long.
constexpr milliseconds shutting_down_pause{1000};
// Kept back from the appliance's budget, so that its DEADLINE_EXCEEDED answer can still
// reach us before our own deadline passes.
constexpr milliseconds max_margin{50};
// lorakeep-cs answers MALFORMED to a longer deadline_ms; a longer wait here is still fine.
constexpr milliseconds max_request_deadline{600'000};

/// Wipes a buffer when it goes out of scope: a request can carry a plaintext root key
/// (ImportRootKeyOp), and std::string and std::vector free their memory as it is.
template <typename Buffer>
class WipeOnExit {
 public:
  explicit WipeOnExit(Buffer& buffer) noexcept : buffer_(buffer) {}
  ~WipeOnExit() {
    if (!buffer_.empty()) OPENSSL_cleanse(buffer_.data(), buffer_.size());
  }
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  WipeOnExit(WipeOnExit&&) = delete;
  WipeOnExit& operator=(WipeOnExit&&) = delete;

 private:
  Buffer& buffer_;
};

std::uint64_t random_start_id() {
  std::uint64_t id = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&id), sizeof id) != 1) id = 1;
  // Leave room below 2^64 so the counter never wraps to 0 in practice.
  return (id >> 1) | 1U;
}

}  // namespace

Result<std::unique_ptr<ApplianceClient>> ApplianceClient::create(ClientOptions options) {
  if (options.endpoints.empty()) {
    return fail(Status::malformed, "no appliance address configured");
  }
  if (options.connections_per_endpoint == 0 ||
      options.connections_per_endpoint > max_connections_per_endpoint) {
    return fail(Status::malformed, "connections per appliance must be 1 to " +
                                       std::to_string(max_connections_per_endpoint));
  }
  if (options.connect_timeout.count() <= 0) {
    return fail(Status::malformed, "the connect timeout must be positive");
  }
  std::vector<Endpoint> endpoints;
  bool any_tcp = false;
  for (const auto& text : options.endpoints) {
    auto ep = Endpoint::parse(text);
    if (!ep) return ep.failure();
    any_tcp = any_tcp || ep->kind == Endpoint::Kind::tcp;
    endpoints.push_back(std::move(ep).value());
  }
  std::unique_ptr<tls::ClientContext> tls;
  if (any_tcp) {
    if (!options.cluster_secret || options.cluster_secret->empty()) {
      return fail(Status::malformed,
                  "a TCP appliance address needs the cluster secret (TLS 1.3 PSK)");
    }
    if (options.cluster_secret->size() < min_cluster_secret) {
      return fail(Status::malformed, "the cluster secret must be at least " +
                                         std::to_string(min_cluster_secret) + " bytes");
    }
    auto ctx = tls::ClientContext::create(*options.cluster_secret);
    if (!ctx) return ctx.failure();
    tls = std::move(ctx).value();
  }
  // Only the derived PSK stays; the secret is zeroized now.
  options.cluster_secret.reset();
  return std::unique_ptr<ApplianceClient>(
      new ApplianceClient(std::move(options), std::move(endpoints), std::move(tls)));
}

ApplianceClient::ApplianceClient(ClientOptions options, std::vector<Endpoint> endpoints,
                                 std::unique_ptr<tls::ClientContext> tls)
    : options_(std::move(options)), tls_(std::move(tls)), next_request_id_(random_start_id()) {
  slots_.resize(endpoints.size());
  for (std::size_t i = 0; i < endpoints.size(); ++i)
    slots_[i].endpoint = std::move(endpoints[i]);
}

ApplianceClient::~ApplianceClient() {
  const std::lock_guard lock(mutex_);
  for (auto& s : slots_)
    s.idle.clear();  // connections close before the TLS context goes
}

ClientStats ApplianceClient::stats() const {
  const std::lock_guard lock(mutex_);
  return stats_;
}

void ApplianceClient::mark_down(std::size_t slot, milliseconds at_least) {
  // Called with mutex_ held.
  Slot& s = slots_[slot];
  s.backoff = s.backoff.count() == 0 ? first_backoff : std::min(s.backoff * 2, max_backoff);
  s.backoff = std::max(s.backoff, at_least);
  s.retry_at = Clock::now() + s.backoff;
}

Result<ApplianceClient::Lease> ApplianceClient::acquire(Clock::time_point end,
                                                        std::string& last_error) {
  std::unique_lock lock(mutex_);
  const std::size_t n = slots_.size();
  const std::size_t start = next_slot_++ % n;
  for (;;) {
    const auto now = Clock::now();
    if (now >= end) return fail(Status::token_unavailable, last_error);
    bool rescan = false;
    bool capacity_busy = false;  // some appliance is at its limit: a release may come
    std::optional<Clock::time_point> earliest_retry;
    for (std::size_t i = 0; i < n && !rescan; ++i) {
      const std::size_t k = (start + i) % n;
      Slot& s = slots_[k];  // slots_ never changes size: the reference survives unlocking
      if (!s.idle.empty()) {
        std::optional<Connection> c(std::move(s.idle.back()));
        s.idle.pop_back();
        lock.unlock();
        if (c->idle_and_open()) return Lease{k, std::move(c), false};
        c.reset();  // closed outside the lock
        lock.lock();
        --s.open;
        ++stats_.dropped;
        rescan = true;
        continue;
      }
      if (s.open >= options_.connections_per_endpoint) {
        capacity_busy = true;
        continue;
      }
      if (s.retry_at > now) {
        earliest_retry = earliest_retry ? std::min(*earliest_retry, s.retry_at) : s.retry_at;
        continue;
      }
      ++s.open;
      lock.unlock();
      auto c = Connection::open(s.endpoint, tls_ ? tls_->get() : nullptr,
                                std::min(end, now + options_.connect_timeout));
      lock.lock();
      if (c) {
        s.backoff = milliseconds{0};
        ++stats_.connects;
        return Lease{k, std::move(c).value(), true};
      }
      --s.open;
      ++stats_.connect_failures;
      if (c.failure().status != Status::deadline || last_error.empty()) {
        last_error = c.failure().message;
      }
      mark_down(k, milliseconds{0});
      released_.notify_one();  // a slot freed: another waiter may use it once it is back
      rescan = true;
    }
    if (rescan) continue;
    // Nothing to take or open now. Wait for a release or a backoff to end — unless neither
    // can happen before the deadline: then fail at once rather than sit it out.
    if (!capacity_busy && (!earliest_retry || *earliest_retry >= end)) {
      if (last_error.empty()) {
        last_error =
            "every appliance failed its last connect and is not retried before the deadline";
      }
      return fail(Status::token_unavailable, last_error);
    }
    released_.wait_until(lock, earliest_retry ? std::min(end, *earliest_retry) : end);
  }
}

void ApplianceClient::release(Lease lease, bool reusable) {
  std::optional<Connection> closing;
  {
    const std::lock_guard lock(mutex_);
    Slot& s = slots_[lease.slot];
    if (reusable && lease.connection) {
      s.idle.push_back(std::move(*lease.connection));
    } else {
      --s.open;
      ++stats_.dropped;
      closing = std::move(lease.connection);
    }
  }
  released_.notify_one();
  // `closing` goes here, outside the lock (a TLS close_notify is a syscall).
}

Result<crypto::v1::Response> ApplianceClient::call(crypto::v1::Request request,
                                                   milliseconds deadline) {
  const auto began = Clock::now();
  const auto end = began + deadline;
  {
    const std::lock_guard lock(mutex_);
    ++stats_.calls;
  }
  std::uint64_t id = next_request_id_.fetch_add(1, std::memory_order_relaxed);
  if (id == 0) id = next_request_id_.fetch_add(1, std::memory_order_relaxed);
  request.set_protocol_version(crypto::v1::VERSION_1);
  request.set_request_id(id);
  std::string no_key;
  const WipeOnExit wipe_key(request.has_import_root_key()
                                ? *request.mutable_import_root_key()->mutable_plaintext()
                                : no_key);

  std::string last_error;
  bool first_attempt = true;
  while (deadline.count() > 0) {
    auto lease = acquire(end, last_error);
    if (!lease) break;
    if (!first_attempt) {
      const std::lock_guard lock(mutex_);
      ++stats_.retries;
    }
    first_attempt = false;
    const std::string& peer = slots_[lease->slot].endpoint.text;  // immutable after create

    const auto left = std::chrono::floor<milliseconds>(end - Clock::now());
    const auto margin = std::min(left / 10, max_margin);
    request.set_deadline_ms(static_cast<std::uint32_t>(
        std::clamp<milliseconds::rep>((left - margin).count(), 1, max_request_deadline.count())));
    std::string wire;  // SerializeToString sizes it once: no unwiped earlier buffer
    const WipeOnExit wipe_wire(wire);
    if (!request.SerializeToString(&wire)) {
      release(std::move(lease).value(), true);
      return fail(Status::malformed, "the request cannot be serialized");
    }
    auto framed = frame::encode(std::span<const std::uint8_t>(
        reinterpret_cast<const std::uint8_t*>(wire.data()), wire.size()));
    if (!framed) {
      release(std::move(lease).value(), true);
      return fail(Status::malformed,
                  "the request does not fit in a frame: " + framed.failure().message);
    }
    const WipeOnExit wipe_frame(*framed);

    Connection& conn = *lease->connection;
    // A fresh connection that fails at once points at the appliance, not at an old socket:
    // wait before the next connect there instead of spinning until the deadline.
    const bool fresh = lease->fresh;
    auto broken = [&](const Failure& why, milliseconds pause) {
      // Running out of time says less than what went wrong before: keep that, if anything.
      if (why.status != Status::deadline || last_error.empty()) last_error = why.message;
      if (fresh || pause.count() > 0) {
        const std::lock_guard lock(mutex_);
        mark_down(lease->slot, pause);
      }
      release(std::move(lease).value(), false);
    };

    if (auto sent = conn.write_all(*framed, end); !sent) {
      broken(sent.failure(), milliseconds{0});
      continue;
    }
    auto payload = conn.read_frame(end);
    if (!payload) {
      broken(payload.failure(), milliseconds{0});
      continue;
    }
    crypto::v1::Response response;
    if (!response.ParseFromArray(payload->data(), static_cast<int>(payload->size()))) {
      broken(fail(Status::token_unavailable,
                  "the appliance at " + peer + " answered a frame that is not a Response"),
             milliseconds{0});
      continue;
    }
    if (response.request_id() != id) {
      broken(fail(Status::token_unavailable, "the appliance at " + peer + " answered request " +
                                                 std::to_string(response.request_id()) +
                                                 " to request " + std::to_string(id)),
             milliseconds{0});
      continue;
    }
    if (response.code() == crypto::v1::SHUTTING_DOWN) {
      broken(fail(Status::token_unavailable, "the appliance at " + peer + " is shutting down"),
             shutting_down_pause);
      continue;
    }
    release(std::move(lease).value(), true);
    return response;
  }
  {
    const std::lock_guard lock(mutex_);
    ++stats_.calls_unanswered;
  }
  std::string message = "no appliance answered within " + std::to_string(deadline.count()) + " ms";
  if (!last_error.empty()) message += ": " + last_error;
  return fail(Status::token_unavailable, message);
}

}  // namespace lorakeep::host
