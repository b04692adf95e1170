// lorakeep-cs-probe: the client side of tests/cs_process. Talks to a running lorakeep-cs the
// way lorakeep-js does (host::ApplianceClient) or, for hostile input, writes raw bytes on a
// connection (Unix socket or TLS with the cluster PSK). Prints one JSON object on stdout;
// the exit code is 0 whenever the probe itself ran (the JSON says what happened), 2 on a
// usage error.
//
//   lorakeep-cs-probe --appliance ADDRESS [--secret-file F] [--deadline-ms N] COMMAND
//     info                      one InfoOp
//     raw HEX [--hold-ms N] [--read-ms N] [--frames N]
//                               send the bytes, wait N ms, then read up to N answer frames
//                               (default 1) within --read-ms (0: close at once, no reading)
//     concurrent N              N clients, each its own connection, all calling InfoOp at
//                               the same moment
#include <atomic>
#include <chrono>
#include <iostream>
#include <latch>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "crypto.pb.h"
#include "host/appliance_client.hpp"
#include "host/connection.hpp"
#include "host/tls_psk.hpp"

using namespace lorakeep;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct Options {
  std::string address;
  std::optional<std::string> secret_file;
  milliseconds deadline{2000};
  std::string command;
  std::string hex;
  milliseconds hold{0};
  milliseconds read{2000};
  std::size_t frames = 1;
  std::size_t clients = 0;
};

[[noreturn]] void usage(const std::string& why) {
  throw std::invalid_argument(why +
                              "\nusage: lorakeep-cs-probe --appliance ADDRESS "
                              "[--secret-file F] [--deadline-ms N] "
                              "(info | raw HEX [--hold-ms N] [--read-ms N] | concurrent N)");
}

Options parse(int argc, char** argv) {
  Options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage("missing value after " + a);
      return args[++i];
    };
    if (a == "--appliance") {
      o.address = value();
    } else if (a == "--secret-file") {
      o.secret_file = value();
    } else if (a == "--deadline-ms") {
      o.deadline = milliseconds(std::stoul(value()));
    } else if (a == "--hold-ms") {
      o.hold = milliseconds(std::stoul(value()));
    } else if (a == "--read-ms") {
      o.read = milliseconds(std::stoul(value()));
    } else if (a == "--frames") {
      o.frames = std::stoul(value());
    } else if (a == "info" && o.command.empty()) {
      o.command = a;
    } else if (a == "raw" && o.command.empty()) {
      o.command = a;
      o.hex = value();
    } else if (a == "concurrent" && o.command.empty()) {
      o.command = a;
      o.clients = std::stoul(value());
    } else {
      usage("unexpected argument " + a);
    }
  }
  if (o.address.empty() || o.command.empty()) usage("--appliance and a command are required");
  return o;
}

std::optional<host::SecretBuffer> secret(const Options& o) {
  if (!o.secret_file) return std::nullopt;
  auto s = host::SecretBuffer::from_file(*o.secret_file);
  if (!s) throw std::runtime_error(s.failure().message);
  return std::move(s).value();
}

std::unique_ptr<host::ApplianceClient> make_client(const Options& o) {
  host::ClientOptions co;
  co.endpoints = {o.address};
  co.cluster_secret = secret(o);
  co.connections_per_endpoint = 1;
  co.connect_timeout = o.deadline;
  auto c = host::ApplianceClient::create(std::move(co));
  if (!c) throw std::runtime_error(c.failure().message);
  return std::move(c).value();
}

long long since(Clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

json response_json(const crypto::v1::Response& r) {
  json j{{"code", crypto::v1::Code_Name(r.code())},
         {"request_id", r.request_id()},
         {"message", r.message()}};
  if (r.has_info()) {
    j["release"] = r.info().release();
    j["self_test_passed"] = r.info().self_test_passed();
  }
  return j;
}

json info(const Options& o) {
  auto client = make_client(o);
  crypto::v1::Request q;
  q.set_caller("lorakeep-cs-probe");
  q.mutable_info();
  const auto t0 = Clock::now();
  auto r = client->call(q, o.deadline);
  json out{{"elapsed_ms", since(t0)}};
  if (!r) {
    out["ok"] = false;
    out["status"] = std::string(status_name(r.failure().status));
    out["message"] = r.failure().message;
    return out;
  }
  out["ok"] = true;
  out["answer"] = response_json(*r);
  return out;
}

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) usage("odd number of hex digits");
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

json raw(const Options& o) {
  auto endpoint = host::Endpoint::parse(o.address);
  if (!endpoint) throw std::runtime_error(endpoint.failure().message);
  std::unique_ptr<host::tls::ClientContext> tls;
  if (endpoint->kind == host::Endpoint::Kind::tcp) {
    auto s = secret(o);
    if (!s) usage("a TCP address needs --secret-file");
    auto ctx = host::tls::ClientContext::create(*s);
    if (!ctx) throw std::runtime_error(ctx.failure().message);
    tls = std::move(ctx).value();
  }
  const auto t0 = Clock::now();
  auto conn = host::Connection::open(*endpoint, tls ? tls->get() : nullptr, t0 + o.deadline);
  json out;
  if (!conn) {
    out["connected"] = false;
    out["message"] = conn.failure().message;
    return out;
  }
  out["connected"] = true;
  const auto bytes = from_hex(o.hex);
  if (!bytes.empty()) {
    if (auto sent = conn->write_all(bytes, Clock::now() + o.deadline); !sent) {
      out["sent"] = false;
      out["message"] = sent.failure().message;
      return out;
    }
  }
  out["sent"] = true;
  std::this_thread::sleep_for(o.hold);
  if (o.read.count() == 0) {
    out["outcome"] = "not read";
    return out;
  }
  const auto t1 = Clock::now();
  json answers = json::array();
  out["outcome"] = "answer";
  for (std::size_t i = 0; i < o.frames; ++i) {
    auto frame = conn->read_frame(t1 + o.read);
    if (!frame) {
      const auto& f = frame.failure();
      out["outcome"] = f.status == Status::deadline ? "timeout" : "closed";
      out["message"] = f.message;
      break;
    }
    crypto::v1::Response r;
    if (!r.ParseFromArray(frame->data(), static_cast<int>(frame->size()))) {
      out["outcome"] = "not a Response";
      break;
    }
    answers.push_back(response_json(r));
  }
  out["read_ms"] = since(t1);
  // "outcome" is "answer" only when every frame asked for arrived.
  if (!answers.empty()) out["answer"] = answers.front();
  out["answers"] = answers;
  return out;
}

json concurrent(const Options& o) {
  if (o.clients == 0 || o.clients > 4096) usage("concurrent wants 1 to 4096 clients");
  std::vector<std::unique_ptr<host::ApplianceClient>> clients;
  for (std::size_t i = 0; i < o.clients; ++i)
    clients.push_back(make_client(o));
  std::atomic<std::size_t> ok{0};
  std::vector<std::string> errors(o.clients);
  std::latch start(static_cast<std::ptrdiff_t>(o.clients));
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < o.clients; ++i) {
    threads.emplace_back([&, i] {
      crypto::v1::Request q;
      q.set_caller("lorakeep-cs-probe");
      q.mutable_info();
      start.arrive_and_wait();
      auto r = clients[i]->call(q, o.deadline);
      if (r && r->code() == crypto::v1::OK) {
        ++ok;
      } else {
        errors[i] = r ? "code " + crypto::v1::Code_Name(r->code()) + ": " + r->message()
                      : r.failure().message;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  json out{{"clients", o.clients}, {"ok", ok.load()}, {"elapsed_ms", since(t0)}};
  json first = json::array();
  for (const auto& e : errors) {
    if (!e.empty() && first.size() < 5) first.push_back(e);
  }
  out["errors"] = first;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    json out;
    if (o.command == "info") {
      out = info(o);
    } else if (o.command == "raw") {
      out = raw(o);
    } else {
      out = concurrent(o);
    }
    std::cout << out.dump() << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lorakeep-cs-probe: " << e.what() << '\n';
    return 2;
  }
}
