// The cross-check's remote mode: the same cases, answered by a running lorakeep-cs over the
// host <-> appliance protocol (the host's ApplianceClient) instead of in-process on a token.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

namespace lorakeep::crosscheck {

/// The loop both modes share: one case per stdin line, one answer per stdout line; a case
/// that throws is answered {"id", "mic_ok": false, "error"} so the driver sees every id.
void answer_lines(const std::function<nlohmann::json(const nlohmann::json&)>& answer);

/// `lorakeep-crosscheck --appliance ADDRESS [--secret-file FILE] [--deadline-ms N]`
/// Reads cases on stdin and writes answers on stdout like the local mode, plus "rewrap" and
/// "kek_labels" (see run.py). Each case imports its root keys as plaintext
/// (ImportRootKeyOp), runs JoinOp or RejoinOp with store_app_s_key, then RewrapAppSKeyOp
/// on the stored AppSKey. The cases must carry kek_ns_label / kek_as_label (run.py
/// --fixed-keks): the appliance's token must already hold those KEKs. Returns the exit code.
int run_remote(int argc, char** argv);

}  // namespace lorakeep::crosscheck
