#!/usr/bin/python3
"""tools/quickstart end to end, the way the README tells an operator to use it.

    /usr/bin/python3 tests/quickstart/run.py --quickstart tools/quickstart --build BUILD_DIR

In a temporary DATA_DIR, with LORAKEEP_PORT=0 (the Join Server picks a free port and says
which) and LORAKEEP_BUILD pointing at an already built tree: quickstart starts, prints the
Join Server's URL and the lorakeepctl join-test line; that line, run as printed, performs a
real join (exit 0, every check held); Ctrl-C (SIGINT) stops quickstart and both services
cleanly (exit 0, no process left, the socket removed); a second run reuses the token, keys
and registry (the demo device's JoinNonce keeps counting); lorakeepctl token create on the
same configuration reports the token present; and no PIN or key from DATA_DIR/secrets or
DATA_DIR/keys appears in anything quickstart or join-test printed.

Each check prints "ok  NAME" or "FAIL NAME: why"; the last line is
"CASES: N passed, M failed" and the exit status is 1 when anything failed.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ctl"))

from harness import Checks  # noqa: E402

READY = "Ctrl-C stops both services."


def _sigint_default():
    # As from a terminal: SIGINT not ignored (bash cannot trap a signal ignored at its start,
    # which is what a runner that ignores SIGINT would hand down).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Quickstart:
    """One run of tools/quickstart as a process in its own session, its output collected."""

    def __init__(self, script: str, build: str, data: str):
        env = dict(os.environ, LORAKEEP_PORT="0", LORAKEEP_BUILD=build)
        self.proc = subprocess.Popen([script, data], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=True, preexec_fn=_sigint_default)
        self.lines = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.strip() == READY:
                self.ready.set()
        self.ready.set()  # ended: whoever waits finds out from the exit status

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, seconds: float) -> bool:
        return self.ready.wait(seconds) and self.proc.poll() is None

    def join_test_command(self):
        for i, line in enumerate(self.lines):
            if line.startswith("A real join against it") and i + 1 < len(self.lines):
                return self.lines[i + 1].strip()
        return None

    def url(self):
        m = re.search(r"Join Server\s+(https://\S+)", self.text())
        return m.group(1) if m else None

    def interrupt(self, seconds: float):
        """Ctrl-C: SIGINT to quickstart (a terminal sends it to the whole foreground group;
        quickstart must stop the services itself either way). The exit status, or None."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None
        self.reader.join(5)
        return code

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def services_of(data: str):
    """lorakeep-cs and lorakeep-js processes started with DATA_DIR's configuration."""
    config = os.path.join(data, "lorakeep.yml")
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        names = [os.path.basename(a.decode(errors="replace")) for a in argv[:1]]
        if names and names[0] in ("lorakeep-cs", "lorakeep-js") and config.encode() in argv:
            found.append(int(pid))
    return found


def run_join_test(command: str):
    argv = shlex.split(command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def secrets_in(data: str):
    """Every secret quickstart made (PINs, KEK, AppKey files): their text and raw bytes."""
    out = []
    for sub in ("secrets", "keys"):
        for name in sorted(os.listdir(os.path.join(data, sub))):
            with open(os.path.join(data, sub, name), "rb") as f:
                raw = f.read().strip()
            out.append((name, raw.decode(errors="replace")))
            out.append((name, raw.decode(errors="replace").upper()))
    return out


def one_run(checks: Checks, args, data: str, tag: str, expect_nonce: int, outputs: list):
    qs = Quickstart(args.quickstart, args.build, data)
    try:
        started = checks.record(f"{tag}: quickstart says it is running", qs.wait_ready(240),
                                qs.text()[-3000:])
        outputs.append(qs.text)
        if not started:
            return
        url = qs.url()
        checks.record(f"{tag}: an https URL on a real port", bool(url) and
                      re.fullmatch(r"https://127\.0\.0\.1:[1-9][0-9]*/", url) is not None,
                      str(url))
        command = qs.join_test_command()
        ok = checks.record(f"{tag}: the join-test line is printed", bool(command) and
                           "join-test" in command and "--url " + str(url) in command,
                           str(command))
        if ok:
            result = run_join_test(command)
            outputs.append(lambda r=result: r.stdout + r.stderr)
            checks.record(f"{tag}: the printed join-test line joins (exit 0)",
                          result.returncode == 0 and
                          "every check held" in result.stdout,
                          f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
            m = re.search(r"JoinNonce\s+(\d+)", result.stdout)
            checks.record(f"{tag}: JoinNonce {expect_nonce} (the registry is "
                          f"{'new' if expect_nonce == 1 else 'reused'})",
                          m is not None and int(m.group(1)) == expect_nonce, result.stdout)
            again = run_join_test(command)
            outputs.append(lambda r=again: r.stdout + r.stderr)
            checks.record(f"{tag}: a second join through the same line",
                          again.returncode == 0 and
                          re.search(rf"JoinNonce\s+{expect_nonce + 1}\b", again.stdout) is not None,
                          again.stdout + again.stderr)
        checks.record(f"{tag}: both services run", len(services_of(data)) >= 2,
                      str(services_of(data)))
        code = qs.interrupt(60)
        checks.record(f"{tag}: Ctrl-C stops quickstart with exit 0", code == 0,
                      f"exit {code}\n{qs.text()[-2000:]}")
        checks.record(f"{tag}: no lorakeep-cs or lorakeep-js left", not services_of(data),
                      str(services_of(data)))
        checks.record(f"{tag}: the appliance socket is removed",
                      not os.path.exists(os.path.join(data, "run", "cs.sock")))
        checks.record(f"{tag}: quickstart says it stopped", "quickstart: stopped" in qs.text(),
                      qs.text()[-1000:])
    finally:
        qs.kill()
        for pid in services_of(data):
            os.kill(pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quickstart", required=True)
    parser.add_argument("--build", required=True, help="a built meson tree (LORAKEEP_BUILD)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    args.quickstart = os.path.abspath(args.quickstart)
    args.build = os.path.abspath(args.build)

    checks = Checks(args.verbose)
    work = tempfile.mkdtemp(prefix="lorakeep-quickstart-")
    os.chmod(work, 0o711)  # run as root, the services are `nobody`: it must reach DATA_DIR
    data = os.path.join(work, "data")
    outputs = []
    try:
        one_run(checks, args, data, "first run", 1, outputs)
        one_run(checks, args, data, "second run", 3, outputs)

        ctl = os.path.join(args.build, "tools", "lorakeepctl")
        config = os.path.join(data, "lorakeep.yml")
        so_pin = os.path.join(data, "secrets", "so.pin")
        created = subprocess.run([ctl, "--config", config, "--json", "token", "create",
                                  "--so-pin-file", so_pin], capture_output=True, text=True)
        outputs.append(lambda r=created: r.stdout + r.stderr)
        try:
            present = json.loads(created.stdout).get("created") is False
        except ValueError:
            present = False
        checks.record("token create on the quickstart's token: present, not created again",
                      created.returncode == 0 and present, created.stdout + created.stderr)
        status = subprocess.run([ctl, "--config", config, "token", "status", "--json"],
                                capture_output=True, text=True)
        outputs.append(lambda r=status: r.stdout + r.stderr)
        try:
            keys = {k["label"]: k["policy"] for k in json.loads(status.stdout)["keys"]}
        except (ValueError, KeyError, TypeError):
            keys = {}
        checks.record("token status: the storage key and the demo KEK pass the policy",
                      status.returncode == 0 and len(keys) == 2 and
                      all(v == "ok" for v in keys.values()), status.stdout + status.stderr)
        if os.geteuid() == 0:
            st = os.stat(os.path.join(data, "token"))
            checks.record("as root, the token belongs to the service user (nobody)",
                          st.st_uid == 65534, f"uid {st.st_uid}")

        printed = "\n".join(f() for f in outputs)
        leaked = [name for name, text in secrets_in(data) if text and text in printed]
        checks.record("no PIN or key file's content in anything printed", not leaked,
                      ", ".join(sorted(set(leaked))))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"CASES: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
