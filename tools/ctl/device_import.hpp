// lorakeepctl device import FILE: many devices from a CSV or JSON-lines file, their root keys
// wrapped by lorakeep-cs on many connections at once and added to the registry in batches.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/ctl/app.hpp"

namespace lorakeep::ctl {

/// Registers `device import` on the device group.
void add_import_command(CLI::App& group, Context& ctx);

}  // namespace lorakeep::ctl
