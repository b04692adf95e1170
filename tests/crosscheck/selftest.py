#!/usr/bin/python3
"""Prove run.py catches every kind of mismatch, using fake_binary.py.

Why: a cross-check driver that always says "passed" is worse than none. For
the correct fake this expects exit 0; for every `--break` mode it expects
exit 1, a final "CASES:" line, and the mismatch reported against the field
that the bug actually affects (so a failure for the wrong reason is caught too).

    /usr/bin/python3 tests/crosscheck/selftest.py
Last line is "CASES: N passed, M failed"; exit 1 on any failure.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run.py")
FAKE = os.path.join(HERE, "fake_binary.py")
# Small but enough that every case kind occurs (incl. 1.1 OptNeg=0, all rejoin types).
ARGS = ["--count", "60", "--seed", "20240601"]

# mode -> text that must appear in run.py's report
EXPECT = {
    "ja_bytes": "join_accept: got",
    "ja_encrypt": "join_accept: got",
    "ja_mic_key": "device MIC check FAILS",
    "cflist": "join_accept: got",
    "optneg0_appkey": "keys.AppSKey: unwrapped",
    "optneg_ignored": "keys: names",
    "eui_order": "keys.FNwkSIntKey: unwrapped",
    "rjcount_be": "[rejoin-type",
    "key:NwkSKey": "keys.NwkSKey: unwrapped",
    "key:AppSKey": "keys.AppSKey: unwrapped",
    "key:FNwkSIntKey": "keys.FNwkSIntKey: unwrapped",
    "key:SNwkSIntKey": "keys.SNwkSIntKey: unwrapped",
    "key:NwkSEncKey": "keys.NwkSEncKey: unwrapped",
    "wrap_kek": "KEKs swapped",
    "stale_kek": "does not unwrap under kek_ns",
    "wrap_bytes": "does not unwrap under",
    "missing_key": "keys: names",
    "extra_key": "keys: names",
    "mic_ok": "mic_ok: got",
    "accept_bad_mic": "mic_ok: got True, want False",
    "keys_on_bad_mic": "present although the MIC is invalid",
    "id": "unknown id",
    "drop": "no answer",
    "dup": "answered more than once",
    "garbage": "is not an answer",
    "exit": "exited with status 3",
}

# The remote mode's extra checks (--fixed-keks, --expect-rewrap): fake run with --rewrap.
EXPECT_REWRAP = {
    "rewrap_key": "rewrap.AppSKey: unwrapped",
    "rewrap_kek": "rewrap.AppSKey: does not unwrap under kek_as",
    "rewrap_missing": "rewrap.AppSKey: missing",
    "rewrap_on_bad_mic": "rewrap: present although the MIC is invalid",
    "label_swap": "kek_labels.AppSKey: got 'ns-fixed', want 'as-fixed'",
    "wrap_kek": "KEKs swapped",  # still caught with one fixed pair of KEKs
}


def run(extra, run_args=()):
    cmd = ([sys.executable, RUN, "--binary", FAKE] + ARGS + list(run_args)
           + (["--"] + extra if extra else []))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def main():
    passed = failed = 0

    def result(ok, label, out):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok   {label}")
        else:
            failed += 1
            print(f"FAIL {label}")
            print("     " + "\n     ".join(out.strip().splitlines()[-15:]))

    rc, out = run([])
    last = out.strip().splitlines()[-1] if out.strip() else ""
    result(rc == 0 and last.startswith("CASES:") and last.endswith(" 0 failed"),
           "correct fake passes", out)

    for mode, needle in EXPECT.items():
        rc, out = run(["--break", mode])
        lines = out.strip().splitlines()
        ok = (rc == 1 and lines and lines[-1].startswith("CASES:")
              and needle in out)
        result(ok, f"--break {mode} caught ({needle!r})", out)

    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, key in (("ns", "000102030405060708090A0B0C0D0E0F"),
                          ("as", "F0E0D0C0B0A090807060504030201000")):
            path = os.path.join(tmp, name + ".hex")
            with open(path, "w") as f:
                f.write(key + "\n")
            files.append(f"{name}-fixed={path}")
        remote = ["--fixed-keks"] + files + ["--expect-rewrap"]
        rc, out = run(["--rewrap"], remote)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        result(rc == 0 and last.endswith(" 0 failed"), "correct fake passes with re-wraps", out)
        rc, out = run([], remote)
        result(rc == 1 and "rewrap.AppSKey: missing" in out,
               "--expect-rewrap fails a binary without re-wraps", out)
        for mode, needle in EXPECT_REWRAP.items():
            rc, out = run(["--rewrap", "--break", mode], remote)
            lines = out.strip().splitlines()
            ok = rc == 1 and lines and lines[-1].startswith("CASES:") and needle in out
            result(ok, f"--rewrap --break {mode} caught ({needle!r})", out)

    print(f"CASES: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
