#!/usr/bin/python3
"""lorakeep-cs as its own process, met the way lorakeep-js meets it.

    /usr/bin/python3 tests/cs_process/run.py --cs PATH --token-tool PATH --probe PATH
        --crosscheck PATH --crosscheck-driver run.py [--token softhsm|nss]
        [--count N] [--only unix|tcp] [--keep]

For each transport — a Unix socket, then TCP with TLS 1.3 and the cluster PSK — it makes a
token (SoftHSMv2, or NSS softoken with --token nss: tests/support/test_token.py over
lorakeep-test-token, storage key and two KEKs), starts lorakeep-cs on it, waits for
"lorakeep-cs ready on <address>", and checks:

  crosscheck   the randomized cross-check (tests/crosscheck/run.py --fixed-keks
               --expect-rewrap, N joins per MAC version plus rejoins) through the server:
               root-key import, joins, rejoins and AppSKey re-wraps, compared with
               python3-cryptography
  hostile      a truncated frame then close; a length header over the limit; a zero length;
               garbage bytes; a valid frame holding no protobuf; a Request with no operation;
               protocol_version 2; (TCP) a wrong cluster secret; a client that sends 2 bytes
               and stalls while others are served; 200 clients at once. Every one is
               followed by a good request that must still succeed, and the server must
               still be running.
  down         after SIGTERM (which must end it cleanly): the client says token_unavailable
               within its deadline; likewise against a socket that accepts and never answers.

Each check prints "ok  NAME" or "FAIL NAME: why"; the last line is
"CASES: N passed, M failed" and the exit status is 1 when anything failed. The server's
stderr is shown when a check fails. Runs as root (it then gives lorakeep-cs the user
'nobody' to drop to) or as any user.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import test_token  # noqa: E402 - tests/support, found through the path set just above
from checks import Checks  # noqa: E402 - idem

READY = re.compile(r"^lorakeep-cs ready on (\S+)$")
CASES_LINE = re.compile(r"^CASES: (\d+) passed, (\d+) failed$", re.M)


# --------------------------------------------------------------------------
# Protobuf, by hand (Debian's python3 has no protobuf module by default); field numbers
# from schemas/lorakeep/crypto/v1/crypto.proto.
# --------------------------------------------------------------------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def pb_bytes(num: int, value: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(value)) + value


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def request(version: int, request_id: int, operation: bytes = b"") -> bytes:
    """Request{protocol_version, request_id, deadline_ms 2000, caller} + operation."""
    return (pb_varint(1, version) + pb_varint(2, request_id) + pb_varint(3, 2000) +
            pb_bytes(4, b"cs_process") + operation)


INFO_OP = pb_bytes(14, b"")


# --------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------

class Server:
    """One lorakeep-cs process on a prepared token."""

    def __init__(self, args, work: str, token, listen: str, secret_file: str, user):
        self.args = args
        self.work = work
        self.config = os.path.join(work, f"lorakeep-{len(os.listdir(work))}.yml")
        self.stderr_path = os.path.join(work, "cs-stderr.txt")
        self.address = None
        self.proc = None
        self.stdout_lines = []
        with open(self.config, "w") as f:
            f.write(config_yaml(work, token, listen, secret_file, user))

    def start(self, timeout: float = 60) -> str:
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([self.args.cs, "--config", self.config],
                                     stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lorakeep-cs exited with status {self.proc.returncode} "
                                   "before it was ready")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                self.stdout_lines.append(text)
                m = READY.match(text)
                if m:
                    self.address = m.group(1)
                    # Keep draining stdout so the server never blocks on a full pipe.
                    threading.Thread(target=self._drain, daemon=True).start()
                    return self.address
        raise RuntimeError(f"no 'lorakeep-cs ready on' line within {timeout} s")

    def _drain(self):
        try:
            for line in self.proc.stdout:
                self.stdout_lines.append(line.decode(errors="replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20):
        """SIGTERM; returns the exit status (None: it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stderr_tail(self, n: int = 25) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join("  | " + line for line in lines[-n:])


def config_yaml(work: str, token, listen: str, secret_file: str, user) -> str:
    lines = [
        "appliance:",
        "  pkcs11:",
        *token.pkcs11_yaml(os.path.join(work, "user.pin")),
        f"  listen: \"{listen}\"",
        f"  cluster_secret_file: {secret_file}",
        "  workers: 2",
        "  sessions_per_worker: 2",
        f"  audit_log: {os.path.join(work, 'audit.log')}",
        # Short enough that the stalled client is dropped within the test, long enough
        # for a slow (sanitizer) build to serve everything else.
        "  idle_timeout_ms: 10000",
        "  handshake_timeout_ms: 5000",
    ]
    if user:
        lines.append(f"  user: {user}")
    return "\n".join(lines) + "\n"


def probe(args, address: str, *cmd, secret=None, deadline_ms=2000, timeout=60) -> dict:
    argv = [args.probe, "--appliance", address, "--deadline-ms", str(deadline_ms)]
    if secret:
        argv += ["--secret-file", secret]
    argv += [str(c) for c in cmd]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"probe exited with {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def write_secret(path: str, data: bytes):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def prepare(args, work: str, user):
    """Token, PIN, KEKs and cluster secret in `work`; returns (token, keks)."""
    write_secret(os.path.join(work, "user.pin"), os.urandom(8).hex().encode() + b"\n")
    keks = {}
    for label in ("ns-fixed", "as-fixed"):
        path = os.path.join(work, label + ".hex")
        write_secret(path, os.urandom(16).hex().encode() + b"\n")
        keks[label] = path
    write_secret(os.path.join(work, "cluster.secret"), os.urandom(32).hex().encode() + b"\n")
    write_secret(os.path.join(work, "wrong.secret"), os.urandom(32).hex().encode() + b"\n")
    token = test_token.make(args.token_tool, args.token, os.path.join(work, "token"),
                            os.path.join(work, "user.pin"), keks)
    if user:
        # lorakeep-cs drops to `user`: its token must be its own, and the way to it open.
        os.chmod(work, 0o755)
        token.hand_to(user)
    return token, keks


def good_request(checks, args, address, secret, name):
    """A good request on a fresh connection: the server still serves (and, as it only serves
    after its known-answer self-tests through the token, says they passed)."""
    try:
        r = probe(args, address, "info", secret=secret, deadline_ms=5000)
    except Exception as e:  # noqa: BLE001 - any failure of the probe is this check's failure
        return checks.record(name, False, str(e))
    ok = r.get("ok") and r["answer"]["code"] == "OK" and r["answer"].get("self_test_passed")
    return checks.record(name, bool(ok), json.dumps(r))


def raw_case(checks, args, server, secret, name, data: bytes, want, hold_ms=0, read_ms=3000,
             frames=1):
    """Sends `data` on a raw connection; `want(result) -> (ok, detail)`; then a good request."""
    try:
        r = probe(args, server.address, "raw", data.hex() or "", "--hold-ms", hold_ms,
                  "--read-ms", read_ms, "--frames", frames, secret=secret, deadline_ms=5000)
        ok, detail = want(r)
        checks.record(name, ok, f"{detail}; probe said {json.dumps(r)}")
    except Exception as e:  # noqa: BLE001
        checks.record(name, False, str(e))
    good_request(checks, args, server.address, secret, f"{name}: then a good request succeeds")


def closed_or_malformed(r):
    """A broken stream may be answered MALFORMED once, or just closed; never served on."""
    if r.get("outcome") == "closed":
        return True, "closed"
    if r.get("outcome") == "answer" and r["answer"]["code"] == "MALFORMED":
        return True, "answered MALFORMED"
    return False, f"want the connection closed (or MALFORMED), got {r.get('outcome')}"


def answered(code: str, request_id=None):
    def want(r):
        if r.get("outcome") != "answer":
            return False, f"want an answer {code}, got {r.get('outcome')}"
        a = r["answer"]
        if a["code"] != code:
            return False, f"want {code}, got {a['code']} ({a.get('message')})"
        if request_id is not None and a["request_id"] != request_id:
            return False, f"want request_id {request_id}, got {a['request_id']}"
        return True, ""
    return want


def crosscheck(checks, args, server, keks, secret, name):
    cmd = [sys.executable, args.crosscheck_driver, "--binary", args.crosscheck,
           "--count", str(args.count), "--fixed-keks"]
    cmd += [f"{label}={path}" for label, path in keks.items()]
    cmd += ["--expect-rewrap", "--timeout", "600", "--", "--appliance", server.address]
    if secret:
        cmd += ["--secret-file", secret]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return checks.record(name, False, "the cross-check timed out")
    out = p.stdout.strip()
    m = CASES_LINE.search(out)
    summary = m.group(0) if m else "no CASES line"
    # Indented, so that tools/test-summary reads this harness's CASES line, not the child's.
    print("  cross-check: " + (out.splitlines()[1] if len(out.splitlines()) > 1 else ""))
    print("  cross-check: " + summary)
    ok = p.returncode == 0 and m is not None and m.group(2) == "0" and int(m.group(1)) > 0
    detail = "\n".join("  | " + line for line in out.splitlines()[-15:]) + p.stderr[-2000:]
    return checks.record(f"{name} ({summary})", ok, "\n" + detail)


def hostile(checks, args, server, secret, transport):
    t = transport
    raw_case(checks, args, server, secret, f"{t}: truncated frame, then close",
             frame(request(1, 1, INFO_OP))[:7], lambda r: (r.get("outcome") == "not read", ""),
             read_ms=0)
    raw_case(checks, args, server, secret, f"{t}: length header over the 64 KiB limit",
             struct.pack(">I", 0x7FFFFFFF) + b"\x08\x01", closed_or_malformed)
    raw_case(checks, args, server, secret, f"{t}: zero length",
             struct.pack(">I", 0) + frame(request(1, 2, INFO_OP)), closed_or_malformed)
    raw_case(checks, args, server, secret, f"{t}: garbage bytes",
             b"\xde\xad\xbe\xef" + os.urandom(60), closed_or_malformed)
    raw_case(checks, args, server, secret, f"{t}: a valid frame holding no protobuf",
             frame(b"\x07\x07\x07\xff\xff"), answered("MALFORMED"))
    raw_case(checks, args, server, secret, f"{t}: a Request with no operation",
             frame(request(1, 5)), answered("UNKNOWN_OPERATION", 5))
    raw_case(checks, args, server, secret, f"{t}: protocol_version 2",
             frame(request(2, 6, INFO_OP)), answered("VERSION_MISMATCH", 6))
    # Several requests on one connection, the last of them good: errors do not end it.
    def error_then_ok(r):
        codes = [(a["code"], a["request_id"]) for a in r.get("answers", [])]
        return codes == [("UNKNOWN_OPERATION", 7), ("OK", 8)], f"answers {codes}"
    raw_case(checks, args, server, secret, f"{t}: after an error answer the connection serves on",
             frame(request(1, 7)) + frame(request(1, 8, INFO_OP)), error_then_ok, frames=2)

    if secret:
        try:
            r = probe(args, server.address, "info", secret=os.path.join(args.work, "wrong.secret"),
                      deadline_ms=2000)
            ok = (not r["ok"] and r["status"] == "token_unavailable" and
                  "TLS handshake" in r["message"] and r["elapsed_ms"] < 2500)
            checks.record(f"{t}: a wrong cluster secret fails the handshake", ok, json.dumps(r))
        except Exception as e:  # noqa: BLE001
            checks.record(f"{t}: a wrong cluster secret fails the handshake", False, str(e))
        good_request(checks, args, server.address, secret,
                     f"{t}: wrong secret: then a good request succeeds")

    stall(checks, args, server, secret, t)

    try:
        r = probe(args, server.address, "concurrent", 200, secret=secret, deadline_ms=30000,
                  timeout=120)
        checks.record(f"{t}: 200 clients at once, all answered", r["ok"] == 200, json.dumps(r))
    except Exception as e:  # noqa: BLE001
        checks.record(f"{t}: 200 clients at once, all answered", False, str(e))
    good_request(checks, args, server.address, secret, f"{t}: after 200 clients, a good request")
    checks.record(f"{t}: the server is still running", server.alive(),
                  f"exit status {server.proc.returncode}")


def stall(checks, args, server, secret, t):
    """A client sends 2 bytes and waits; others are served meanwhile, promptly."""
    argv = [args.probe, "--appliance", server.address, "--deadline-ms", "5000"]
    if secret:
        argv += ["--secret-file", secret]
    staller = subprocess.Popen(argv + ["raw", "0000", "--hold-ms", "4000", "--read-ms", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # it is connected and has sent its 2 bytes
        times = []
        ok = True
        for _ in range(5):
            r = probe(args, server.address, "info", secret=secret, deadline_ms=3000)
            ok = ok and r.get("ok") and r["answer"]["code"] == "OK"
            times.append(r.get("elapsed_ms"))
        still_stalling = staller.poll() is None
        checks.record(f"{t}: a stalled client does not hold up others",
                      ok and still_stalling and max(times) < 2000,
                      f"answers ok={ok}, elapsed {times} ms, staller still connected="
                      f"{still_stalling}")
    except Exception as e:  # noqa: BLE001
        checks.record(f"{t}: a stalled client does not hold up others", False, str(e))
    finally:
        try:
            staller.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            staller.kill()
            staller.communicate()


def appliance_down(checks, args, address, secret, t):
    try:
        r = probe(args, address, "info", secret=secret, deadline_ms=1000, timeout=10)
        ok = (not r["ok"] and r["status"] == "token_unavailable" and
              r["message"].startswith("no appliance answered within 1000 ms") and
              r["elapsed_ms"] <= 1200)
        checks.record(f"{t}: appliance down: token_unavailable within the deadline", ok,
                      json.dumps(r))
    except Exception as e:  # noqa: BLE001
        checks.record(f"{t}: appliance down: token_unavailable within the deadline", False, str(e))


def silent_listener(checks, args, work):
    """A socket that accepts and never answers (a hung appliance): the deadline holds."""
    path = os.path.join(work, "silent.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        s.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(s.accept()[0])
            except OSError:
                pass
    th = threading.Thread(target=accept, daemon=True)
    th.start()
    name = "a hung appliance (accepts, never answers): token_unavailable within the deadline"
    try:
        r = probe(args, "unix:" + path, "info", deadline_ms=700, timeout=10)
        ok = (not r["ok"] and r["status"] == "token_unavailable" and
              650 <= r["elapsed_ms"] <= 1000)
        checks.record(name, ok, json.dumps(r))
    except Exception as e:  # noqa: BLE001
        checks.record(name, False, str(e))
    finally:
        stop.set()
        th.join()
        for c in held:
            c.close()
        s.close()


def run_transport(checks, args, base: str, transport: str, user):
    work = tempfile.mkdtemp(prefix=f"{transport}-", dir=base)
    args.work = work
    token, keks = prepare(args, work, user)
    secret = os.path.join(work, "cluster.secret")
    if user:
        os.chmod(work, 0o755)
    listen = f"unix:{os.path.join(work, 'cs.sock')}" if transport == "unix" else "127.0.0.1:0"
    server = Server(args, work, token, listen, secret, user)
    shown = []

    def show_stderr():
        if not shown:
            shown.append(True)
            print("  lorakeep-cs stderr (last lines):\n" + server.stderr_tail())
    checks.on_failure = show_stderr
    try:
        address = server.start()
    except Exception as e:  # noqa: BLE001
        checks.record(f"{transport}: lorakeep-cs starts and says it is ready", False, str(e))
        server.stop()
        return
    checks.record(f"{transport}: lorakeep-cs starts and says it is ready ({address})", True)
    client_secret = secret if transport == "tcp" else None
    try:
        good_request(checks, args, address, client_secret, f"{transport}: an Info request")
        crosscheck(checks, args, server, keks, client_secret, f"{transport}: cross-check")
        hostile(checks, args, server, client_secret, transport)
    finally:
        status = server.stop()
        checks.record(f"{transport}: SIGTERM ends lorakeep-cs cleanly", status == 0,
                      f"exit status {status}")
    appliance_down(checks, args, address, client_secret, transport)
    checks.on_failure = None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cs", required=True, help="the lorakeep-cs binary")
    p.add_argument("--token", choices=test_token.KINDS, default="softhsm",
                   help="the PKCS#11 token lorakeep-cs runs on")
    p.add_argument("--token-tool", required=True, help="lorakeep-test-token")
    p.add_argument("--probe", required=True, help="lorakeep-cs-probe")
    p.add_argument("--crosscheck", required=True, help="lorakeep-crosscheck")
    p.add_argument("--crosscheck-driver", required=True, help="tests/crosscheck/run.py")
    p.add_argument("--count", type=int, default=100, help="cross-check joins per MAC version")
    p.add_argument("--only", choices=("unix", "tcp"), help="one transport only")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--verbose", action="store_true", help="show what each passing check saw")
    args = p.parse_args(argv)

    checks = Checks(args.verbose)
    print(f"token: {args.token}")
    user = "nobody" if os.geteuid() == 0 else None
    base = tempfile.mkdtemp(prefix="lorakeep-cs-process-")
    if user:
        os.chmod(base, 0o755)
    try:
        if not os.access(args.cs, os.X_OK):
            checks.record("lorakeep-cs is built", False, f"{args.cs} is not an executable")
        else:
            for transport in ("unix", "tcp"):
                if args.only in (None, transport):
                    run_transport(checks, args, base, transport, user)
            silent_listener(checks, args, base)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"CASES: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
