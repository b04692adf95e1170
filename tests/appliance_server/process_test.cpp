// lorakeep-cs as real processes: start-up, the ready line, joins over the Unix socket,
// privileges and hardening of the processes, a worker restarted, SIGTERM with requests in
// flight, the audit log.
#include <doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "appliance/provision.hpp"
#include "process_harness.hpp"
#include "requests.hpp"

using namespace lorakeep;
using namespace lorakeep::test;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The device's keys as the registry holds them, wrapped under the installation's storage key.
Device device(Installation& in) {
  Device d{random_bytes(16), random_bytes(16), {}, {}};
  for (auto [key, out] :
       {std::pair{&d.app_key, &d.wrapped_app_key}, std::pair{&d.nwk_key, &d.wrapped_nwk_key}}) {
    auto wrapped = appliance::import_root_key(in.session, in.keys, pkcs11::SecretBytes(*key));
    REQUIRE(wrapped.ok());
    *out = *wrapped;
  }
  return d;
}

}  // namespace

TEST_CASE("lorakeep-cs serves over its Unix socket, hardened, and stops cleanly on SIGTERM") {
  Installation in;
  const Device d = device(in);
  const auto config = in.write_config("unix:cs.sock", "  workers: 2\n  sessions_per_worker: 1\n");
  in.hand_over();
  const auto socket = in.dir.path() / "cs.sock";
  // As root (CI), lorakeep-cs drops to nobody; otherwise it keeps the test's user.
  const uid_t expected_uid = ::geteuid() == 0 ? 65534 : ::geteuid();

  CsProcess cs(config, in.logs.path());
  const auto address = cs.wait_ready(90s);
  REQUIRE_MESSAGE(address, cs.stderr_text());
  CHECK(*address == "unix:" + socket.string());

  struct stat st {};
  REQUIRE(::stat(socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);
  CHECK(st.st_uid == expected_uid);

  // Master and workers run as nobody and are not dumpable (/proc/<pid> then belongs to root).
  const auto workers = cs.children();
  CHECK(workers.size() == 2);
  for (const pid_t pid : workers) {
    CAPTURE(pid);
    CHECK(process_uid(pid) == expected_uid);
    CHECK(proc_owner(pid) == 0);
  }
  CHECK(process_uid(cs.pid()) == expected_uid);
  CHECK(proc_owner(cs.pid()) == 0);

  auto client = TestClient::unix_socket(socket);
  auto info = request(1);
  info.mutable_info();
  const auto answer = client.call(info);
  REQUIRE(answer.code() == v1::OK);
  CHECK(answer.info().workers() == 2);
  CHECK(answer.info().self_test_passed());
  CHECK(answer.info().token_label() == "lorakeep-test");

  // The KEKs the installation imported, for opening envelopes with OpenSSL.
  const Keks keks{in.kek_ns, in.kek_as};
  for (std::uint16_t i = 0; i < 4; ++i) {
    const auto r = client.call(join_request(10 + i, d, "1.0.2", i, 100u + i));
    REQUIRE_MESSAGE(r.code() == v1::OK, r.message());
    check_join_1_0(keks, d.app_key, r.join(), i, 100u + i);
  }
  const auto r11 = client.call(join_request(20, d, "1.1", 7, 8));
  REQUIRE_MESSAGE(r11.code() == v1::OK, r11.message());
  CHECK(r11.join().has_f_nwk_s_int_key());

  SUBCASE("a worker that dies is replaced") {
    REQUIRE(!workers.empty());
    ::kill(workers[0], SIGKILL);
    std::vector<pid_t> now;
    for (int i = 0; i < 200; ++i) {
      now = cs.children();
      if (now.size() == 2 && std::find(now.begin(), now.end(), workers[0]) == now.end()) break;
      std::this_thread::sleep_for(50ms);
    }
    CHECK(now.size() == 2);
    CHECK(std::find(now.begin(), now.end(), workers[0]) == now.end());
    // Served, by whichever worker takes the connection.
    for (int i = 0; i < 4; ++i) {
      auto fresh = TestClient::unix_socket(socket);
      auto again = fresh.call(join_request(30 + static_cast<std::uint64_t>(i), d, "1.0.2", 30, 31));
      CHECK_MESSAGE(again.code() == v1::OK, again.message());
    }
    CHECK(cs.stderr_text().find("\"event\":\"worker_died\"") != std::string::npos);
  }

  // SIGTERM with requests in flight: each is answered (OK, or SHUTTING_DOWN once the
  // worker stopped), in order; then the connection closes and lorakeep-cs exits 0.
  constexpr int n = 40;
  auto busy = TestClient::unix_socket(socket);
  for (std::uint16_t i = 0; i < n; ++i) {
    busy.send(join_request(1000u + i, d, "1.0.2", i, 5));
  }
  const auto first = busy.receive();
  REQUIRE(first);
  CHECK(first->code() == v1::OK);
  cs.signal(SIGTERM);
  int ok = 1;
  int shutting_down = 0;
  for (int i = 1; i < n; ++i) {
    const auto a = busy.receive();
    REQUIRE_MESSAGE(a, "answer " << i << " missing");
    CHECK(a->request_id() == static_cast<std::uint64_t>(1000 + i));
    if (a->code() == v1::OK) {
      CHECK(shutting_down == 0);
      ++ok;
    } else {
      CHECK(a->code() == v1::SHUTTING_DOWN);
      ++shutting_down;
    }
  }
  CHECK(ok + shutting_down == n);
  CHECK(busy.closed_by_peer(10s));
  const auto status = cs.wait_exit(60s);
  REQUIRE_MESSAGE(status, cs.stderr_text());
  CHECK(*status == 0);
  CHECK_FALSE(std::filesystem::exists(socket));
  CHECK_MESSAGE(sanitizer_clean(cs.stderr_text()), cs.stderr_text());
  CHECK(cs.children().empty());  // no worker left

  // The audit log: a line per join, nothing secret.
  const std::string audit = read_file(in.dir.path() / "audit.log");
  CHECK(audit.find("\"operation\":\"join_1_0\"") != std::string::npos);
  CHECK(audit.find("\"operation\":\"join_1_1\"") != std::string::npos);
  CHECK(audit.find("\"dev_eui\":\"" + kDevEui + "\"") != std::string::npos);
  CHECK(audit.find("\"caller\":\"test\"") != std::string::npos);
  CHECK(audit.find("\"peer\":\"unix:uid=" + std::to_string(::geteuid()) +
                   ",pid=" + std::to_string(::getpid()) + "\"") != std::string::npos);
  for (const Bytes& key : {d.app_key, d.nwk_key, in.kek_ns, in.kek_as, in.cluster_secret}) {
    std::string upper = to_hex(key);
    for (auto& c : upper)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    CHECK(audit.find(to_hex(key)) == std::string::npos);
    CHECK(audit.find(upper) == std::string::npos);
    CHECK(cs.stderr_text().find(to_hex(key)) == std::string::npos);
    CHECK(cs.stderr_text().find(upper) == std::string::npos);
  }
  const auto pin = in.token.user_pin().reveal();
  CHECK(audit.find(std::string(pin.begin(), pin.end())) == std::string::npos);
  CHECK(cs.stderr_text().find(std::string(pin.begin(), pin.end())) == std::string::npos);
}

TEST_CASE(
    "a worker renews its PKCS#11 module every reinitialize_after operations, failing nothing") {
  Installation in;
  const Device d = device(in);
  // Two workers with two sessions each, four clients at once: a renewal has to wait for
  // leases held by other threads, hold back the requests arriving meanwhile, and not meet
  // the other worker's renewal inside SoftHSM (which then hides the token from one of them).
  const auto config = in.write_config("unix:cs.sock", "  workers: 2\n  sessions_per_worker: 2\n",
                                      "    reinitialize_after: 5\n");
  in.hand_over();
  const auto socket = in.dir.path() / "cs.sock";
  CsProcess cs(config, in.logs.path());
  REQUIRE_MESSAGE(cs.wait_ready(90s), cs.stderr_text());
  const auto workers = cs.children();
  REQUIRE(workers.size() == 2);

  const Keks keks{in.kek_ns, in.kek_as};
  constexpr std::size_t clients = 4;
  constexpr std::size_t joins = 30;  // per client; each worker gets a multiple of 30
  std::vector<std::string> problems(clients);
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto client = TestClient::unix_socket(socket);
      for (std::size_t j = 0; j < joins; ++j) {
        const auto nonce = static_cast<std::uint16_t>(c * 100 + j);
        const bool v11 = j % 3 == 2;
        const auto r = client.call(join_request(static_cast<std::uint64_t>(nonce) + 1, d,
                                                v11 ? "1.1" : "1.0.2", nonce, 500u + nonce));
        if (r.code() != v1::OK) {
          problems[c] =
              "join " + std::to_string(j) + ": " + v1::Code_Name(r.code()) + ": " + r.message();
          return;
        }
        if (!v11) {
          try {
            check_join_1_0(keks, d.app_key, r.join(), nonce, 500u + nonce);
          } catch (const std::exception& e) {
            problems[c] = e.what();
          }
        } else if (!r.join().has_f_nwk_s_int_key()) {
          problems[c] = "a 1.1 join without FNwkSIntKey";
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  for (std::size_t c = 0; c < clients; ++c)
    CHECK_MESSAGE(problems[c].empty(), "client " << c << ": " << problems[c]);

  auto client = TestClient::unix_socket(socket);
  auto stats = request(900);
  stats.mutable_stats();
  const auto answer = client.call(stats);
  REQUIRE(answer.code() == v1::OK);
  // Every 5 operations of a worker at most. Under concurrent load a renewal falling due
  // while the worker's last one is still under way (or its thread is not yet scheduled) is
  // skipped and the next is counted from the renewal's end, so how many happen depends on
  // the scheduler; that they happen without failing a request does not.
  const auto renewals = answer.stats().token_reinitializations();
  const std::string log = cs.stderr_text();
  CHECK_MESSAGE(renewals <= clients * joins / 5, log);
  CHECK_MESSAGE(renewals >= 1, log);
  CHECK(cs.children() == workers);  // renewed in place, not restarted
  CHECK(log.find("\"event\":\"token_reinitialized\"") != std::string::npos);
  CHECK(log.find("token_reinitialize_failed") == std::string::npos);
  CHECK(log.find("worker_died") == std::string::npos);

  // One client at a time: a worker counts an operation before it answers, so every 5th is
  // a renewal, exactly. The worker this connection lands on may be up to 4 operations into
  // its count already. After the renewals the token still holds its keys.
  constexpr std::uint64_t sequential = 20;
  for (std::uint64_t j = 0; j < sequential; ++j) {
    const auto nonce = static_cast<std::uint16_t>(901 + j);
    const auto after = client.call(join_request(901 + j, d, "1.0.2", nonce, 2000u + nonce));
    REQUIRE_MESSAGE(after.code() == v1::OK, after.message());
    check_join_1_0(keks, d.app_key, after.join(), nonce, 2000u + nonce);
  }
  stats.set_request_id(950);
  const auto later = client.call(stats);
  REQUIRE(later.code() == v1::OK);
  const auto renewed = later.stats().token_reinitializations() - renewals;
  CHECK(renewed >= sequential / 5);
  CHECK(renewed <= sequential / 5 + 1);
  cs.signal(SIGTERM);
  CHECK(cs.wait_exit(60s) == 0);
  CHECK_MESSAGE(sanitizer_clean(cs.stderr_text()), cs.stderr_text());
}
