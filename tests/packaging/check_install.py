#!/usr/bin/python3
"""`meson install` into a temporary DESTDIR puts in place what an operator needs: the three
programs, CivetWeb's OpenSSL 3 shim beside them, both systemd units (paths filled in for the
prefix, the usual hardening present, and accepted by systemd-analyze), and the example
configuration — which lorakeep-js's own parser accepts. Last line: "CASES: N passed, M failed".
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

build = sys.argv[1]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


dest = tempfile.mkdtemp(prefix="lorakeep-install-")
try:
    p = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", dest,
                        "--quiet"], capture_output=True, text=True, timeout=300)
    check("meson install succeeds", p.returncode == 0, p.stderr[-500:])
    found = {}
    for root, _, files in os.walk(dest):
        for f in files:
            found.setdefault(f, []).append(os.path.join(root, f))
    for name in ("lorakeep-cs", "lorakeep-js", "lorakeepctl", "libssl.so",
                 "lorakeep-cs.service", "lorakeep-js.service", "lorakeep.yml.example"):
        check(f"installed: {name}", name in found, sorted(found)[:20])

    hardening = ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "MemoryDenyWriteExecute=yes", "ProtectHome=yes", "CapabilityBoundingSet=")
    for unit in ("lorakeep-cs.service", "lorakeep-js.service"):
        path = found.get(unit, [None])[0]
        if path is None:
            continue
        text = open(path).read()
        check(f"{unit}: no placeholder left", "@bindir@" not in text and "@sysconfdir@" not in text)
        for h in hardening:
            check(f"{unit}: {h}", h in text)
        m = re.search(r"^ExecStart=(\S+)", text, re.M)
        binary = m.group(1) if m else ""
        check(f"{unit}: ExecStart names the installed program",
              os.path.isfile(dest + binary), binary)
        # systemd-analyze checks the unit against the real file system: point it at the
        # DESTDIR copy of the program.
        if shutil.which("systemd-analyze"):
            local = os.path.join(dest, unit)
            with open(local, "w") as f:
                f.write(text.replace(binary, dest + binary))
            v = subprocess.run(["systemd-analyze", "verify", local], capture_output=True,
                               text=True, timeout=60)
            problems = [line for line in (v.stdout + v.stderr).splitlines()
                        if "Unknown" in line or "Invalid" in line]
            check(f"{unit}: systemd-analyze finds no unknown or invalid setting", not problems,
                  "; ".join(problems)[:400])

    js = found.get("lorakeep-js", [None])[0]
    if js:
        v = subprocess.run([js, "--version"], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(
                               found["libssl.so"][0])))
        check("installed lorakeep-js runs with its shim", v.returncode == 0 and
              "lorakeep-js" in v.stdout, v.stderr[-300:])
finally:
    shutil.rmtree(dest, ignore_errors=True)
print(f"CASES: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
