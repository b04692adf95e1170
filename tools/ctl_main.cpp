// lorakeepctl: the operator's command line (docs/operations.md). Each group of commands lives
// in tools/ctl/<group>.cpp and registers its subcommands here; a parsed subcommand leaves
// its action in the Context, which main runs and turns into an exit code.

// GCC 12 reports a "potential null pointer dereference" in std::vector<std::string> growth
// inlined into CLI11's detail::split — a known false positive of its -Wnull-dereference.
// This file holds nothing but the command-line set-up, so the warning is off for it alone.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <exception>
#include <iostream>

#include "appliance/server/hardening.hpp"
#include "lorakeep_config.h"
#include "tools/ctl/app.hpp"

int main(int argc, char** argv) {
  using namespace lorakeep::ctl;
  Context ctx;
  CLI::App app(
      "lorakeepctl: set up the token, KEKs, part keys, peers and devices of a lorakeep Join "
      "Server.\nChanges apply to running services without a restart: devices and peers at once, "
      "KEKs and part keys at once (token objects), CA files within the Join Server's reload "
      "interval or on SIGHUP.",
      "lorakeepctl");
  app.set_version_flag("--version", std::string("lorakeepctl ") + LORAKEEP_VERSION);
  app.add_option("-c,--config", ctx.globals.config,
                 "lorakeep.yml (default: $LORAKEEP_CONFIG, else /etc/lorakeep/lorakeep.yml)");
  app.add_flag("--json", ctx.globals.json, "Machine-readable output: one JSON document on stdout");
  // Global options may also come after the subcommand ("lorakeepctl device list --json").
  app.fallthrough();
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 ok, 1 failed, 2 usage or configuration, 3 not found, 4 already there or "
      "still in use, 5 appliance or token unavailable, 6 import with rejected rows, 7 check "
      "failed.\nKeys, PINs and secrets are read from files or the environment, never from the "
      "command line.\nExample:\n  lorakeepctl --config /etc/lorakeep/lorakeep.yml token status");

  register_token(app, ctx);
  register_kek(app, ctx);
  register_part(app, ctx);
  register_peer(app, ctx);
  register_device(app, ctx);
  register_join_test(app, ctx);
  register_bench(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    (void)app.exit(e);
    return static_cast<int>(Exit::usage);
  }
  if (!ctx.action) {
    std::cerr << app.help();
    return static_cast<int>(Exit::usage);
  }
  try {
    // Key material passes through this process: no core dump may keep it.
    lorakeep::appliance::server::forbid_core_dumps();
    const int code = ctx.action(ctx);
    std::cout.flush();
    return code;
  } catch (...) {
    return report_current_exception(ctx);
  }
}
