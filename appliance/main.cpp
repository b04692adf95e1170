// lorakeep-cs: the Crypto Server. Usage: lorakeep-cs [--config FILE]. Secrets come from
// files or the environment named in the configuration, never from the command line.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "appliance/server/supervisor.hpp"
#include "lorakeep_config.h"

int main(int argc, char** argv) {
  const char* config = "/etc/lorakeep/lorakeep.yml";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if ((arg == "--config" || arg == "-c") && i + 1 < argc) {
      config = argv[++i];
    } else if (arg == "--version") {
      std::printf("lorakeep-cs %s\n", LORAKEEP_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      std::printf("usage: lorakeep-cs [--config FILE]   (default /etc/lorakeep/lorakeep.yml)\n");
      return 0;
    } else {
      std::fprintf(stderr, "lorakeep-cs: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  return lorakeep::appliance::server::run_appliance(config);
}
