#!/usr/bin/python3
"""lorakeepctl join-test end to end, against real processes.

The stack of tests/js_process (harness.Environment: a fresh token, lorakeep-cs, lorakeep-js
over HTTPS with a client certificate per sender, peers with KEKs) and devices added with
lorakeepctl. join-test then acts as the Network Server: joins that must succeed (1.1 with a
nonce state file, 1.0.2 with a random DevNonce, an AppSKeyReq as the AS), and each way it
must say no: a replayed DevNonce, a wrong AppKey (MICFailed), a wrong KEK (the Join Server
said Success but the keys do not unwrap: exit 7), another NS's certificate, no server at all,
a counter device without a DevNonce. No key is ever printed, in either output form.

The last line is "CASES: N passed, M failed".
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "js_process"))
sys.path.insert(0, os.path.join(HERE, "..", "crosscheck"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import harness  # noqa: E402
import lorawan_ref as ref  # noqa: E402


class JoinTest:
    def __init__(self, env: harness.Environment):
        self.env = env
        self.keys = os.path.join(env.work, "keys")
        os.makedirs(self.keys, exist_ok=True)

    def key_file(self, name: str, key: bytes) -> str:
        path = os.path.join(self.keys, name)
        harness.write_secret(path, key.hex().encode() + b"\n")
        return path

    def argv(self, device: harness.Device, sender=harness.NS_A, cert=None, kek="ns-a-kek",
             app_key: bytes = None, url=None, extra=()):
        env = self.env
        cert = cert or env.certs[sender]
        a = ["join-test", "--url", url or env.url, "--ca", env.server_ca,
             "--cert", cert[0], "--cert-key-file", cert[1], "--net-id", sender,
             "--dev-eui", device.eui(), "--join-eui", harness.JOIN_EUI,
             "--mac-version", device.mac,
             "--app-key-file", self.key_file(device.eui() + ".app", app_key or device.app_key)]
        if device.nwk_key:
            a += ["--nwk-key-file", self.key_file(device.eui() + ".nwk", device.nwk_key)]
        if kek:
            a += ["--kek-file", os.path.join(env.work, kek + ".hex")]
        return a + list(extra)

    def run(self, argv, json_out=True):
        cmd = [self.env.args.ctl] + argv + (["--json"] if json_out else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        doc = None
        if json_out:
            try:
                doc = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else None
            except ValueError:
                doc = None
        return p, doc


def secrets_of(env: harness.Environment, *devices) -> list:
    out = [k.hex() for k in env.keks.values()]
    for d in devices:
        out.append(d.app_key.hex())
        if d.nwk_key:
            out.append(d.nwk_key.hex())
    return out


def leaks(text: str, secrets: list) -> list:
    low = text.lower()
    return [s[:6] + "…" for s in secrets if s.lower() in low]


def scenario(checks: harness.Checks, env: harness.Environment):
    jt = JoinTest(env)
    as_kek = os.path.join(env.work, "as-kek.hex")
    state = os.path.join(env.work, "nonces.json")

    d11 = env.add_device(harness.Device("1.1"))
    base = jt.argv(d11, extra=["--nonce-state", state, "--as-kek-file", as_kek])
    p, doc = jt.run(base)
    checks.record("1.1 join succeeds (exit 0, success, every check ok)",
                  p.returncode == 0 and doc and doc["success"]
                  and all(c["ok"] for c in doc["checks"]),
                  f"exit {p.returncode}: {p.stdout[-800:]} {p.stderr[-400:]}")
    if doc:
        names = [c["name"] for c in doc["checks"]]
        checks.record("1.1: the three network keys and the AppSKey were checked",
                      all(n in names for n in ("FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey",
                                               "AppSKey", "join-accept MIC")), str(names))
        checks.record("1.1: DevNonce 1 from the new state file, JoinNonce 1",
                      doc["dev_nonce"] == 1 and doc.get("join_nonce") == 1, json.dumps(doc)[:300])
        # The session keys derived by an independent reference never appear in the output.
        derived = ref.derive_session_keys_11(d11.nwk_key, d11.app_key, (1).to_bytes(3, "big"),
                                             d11.join_eui, (1).to_bytes(2, "big"))
        extra_secrets = [k.hex() for k in derived.values()]
        checks.record("--json output holds no key",
                      not leaks(p.stdout + p.stderr, secrets_of(env, d11) + extra_secrets),
                      str(leaks(p.stdout + p.stderr, secrets_of(env, d11) + extra_secrets)))
    with open(state) as f:
        checks.record("the state file remembers DevNonce 1", json.load(f).get(d11.eui()) == 1)

    p, _ = jt.run(base + ["--as-id", harness.AS_ID, "--as-cert", env.certs[harness.AS_ID][0],
                          "--as-cert-key-file", env.certs[harness.AS_ID][1]], json_out=False)
    out = p.stdout
    checks.record("second join (DevNonce 2) and AppSKeyReq as the AS succeed, human output",
                  p.returncode == 0 and "DevNonce 2 (counter" in out
                  and "AppSKeyReq as " + harness.AS_ID in out
                  and "result: the join succeeded and every check held" in out,
                  f"exit {p.returncode}: {out[-1500:]} {p.stderr[-400:]}")
    checks.record("human output names each key's KEK and the verdict",
                  "unwrapped with KEK 'ns-a-kek': matches the device's derivation" in out
                  and "unwrapped with KEK 'as-kek': matches the device's derivation" in out
                  and "HTTP 200" in out and "JoinNonce" in out, out[-1500:])
    checks.record("human output holds no key", not leaks(out + p.stderr, secrets_of(env, d11)),
                  str(leaks(out + p.stderr, secrets_of(env, d11))))

    p, doc = jt.run(jt.argv(d11, extra=["--dev-nonce", "2", "--as-kek-file", as_kek]))
    checks.record("a replayed DevNonce is refused: exit 1, FrameReplayed",
                  p.returncode == 1 and doc and doc.get("result_code") == "FrameReplayed"
                  and not doc["success"], f"exit {p.returncode}: {p.stdout[-600:]}")

    d10 = env.add_device(harness.Device("1.0.2"))
    p, doc = jt.run(jt.argv(d10, extra=["--as-kek-file", as_kek]))
    checks.record("1.0.2 join with a random DevNonce succeeds, NwkSKey and AppSKey checked",
                  p.returncode == 0 and doc and doc["success"]
                  and doc["dev_nonce_source"] == "random"
                  and {"NwkSKey", "AppSKey"} <= {c["name"] for c in doc["checks"]},
                  f"exit {p.returncode}: {p.stdout[-800:]}")

    p, doc = jt.run(jt.argv(d10, app_key=os.urandom(16), extra=["--as-kek-file", as_kek]))
    checks.record("a wrong AppKey: exit 1, MICFailed",
                  p.returncode == 1 and doc and doc.get("result_code") == "MICFailed",
                  f"exit {p.returncode}: {p.stdout[-600:]}")

    wrong = jt.key_file("wrong.kek", os.urandom(16))
    p, doc = jt.run(jt.argv(d10, kek=None, extra=["--kek-file", wrong, "--as-kek-file", as_kek]))
    failed = [c for c in (doc or {}).get("checks", []) if not c["ok"]]
    checks.record("a wrong NS KEK: Success from the server, but exit 7 naming NwkSKey",
                  p.returncode == 7 and doc and doc.get("result_code") == "Success"
                  and failed and failed[0]["name"] == "NwkSKey"
                  and "integrity check failed" in failed[0]["detail"],
                  f"exit {p.returncode}: {p.stdout[-600:]}")

    p, doc = jt.run(jt.argv(d10, cert=env.certs[harness.NS_B], extra=["--as-kek-file", as_kek]))
    checks.record("another NS's certificate for this NetID: exit 1, UnknownSender",
                  p.returncode == 1 and doc and doc.get("result_code") == "UnknownSender",
                  f"exit {p.returncode}: {p.stdout[-600:]}")

    p, doc = jt.run(jt.argv(d10, url="https://127.0.0.1:9/", extra=["--timeout-ms", "2000"]))
    checks.record("no server: exit 5, the reason in the report",
                  p.returncode == 5 and doc and "error" in doc and not doc["success"],
                  f"exit {p.returncode}: {p.stdout[-400:]}")

    p, _ = jt.run(jt.argv(d11), json_out=False)
    checks.record("a counter device without --dev-nonce or --nonce-state: exit 2",
                  p.returncode == 2 and "--nonce-state" in p.stderr, f"exit {p.returncode}: {p.stderr}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--js", required=True)
    p.add_argument("--cs", required=True)
    p.add_argument("--ctl", required=True)
    p.add_argument("--token-tool", required=True)
    p.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    args.token = "softhsm"
    checks = harness.Checks()
    work = tempfile.mkdtemp(prefix="lorakeep-join-test-")
    env = None
    try:
        env = harness.Environment(args, work)
        env.start()
        scenario(checks, env)
    except Exception:
        checks.record("ran to the end", False, traceback.format_exc())
        if env is not None:
            env.show_logs()
    finally:
        if env is not None:
            env.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"CASES: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 and checks.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
