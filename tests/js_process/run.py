#!/usr/bin/python3
"""lorakeep-js end to end, as Network and Application Servers meet it.

Real processes: a token (SoftHSM, or the NSS softoken with --token nss), lorakeep-cs on a
Unix socket, lorakeep-js over HTTPS with client certificates from a PKI made here, devices
and peers provisioned with lorakeepctl. Each answer is checked with an implementation
nobody here wrote into lorakeep (tests/crosscheck/lorawan_ref.py on python3-cryptography):
the join-accept is decrypted and its MIC checked as the device would, the session keys are
unwrapped with the peers' KEKs and compared with the reference's own derivation. Every
refusal is checked to leave the registry unchanged.

The last line is "CASES: N passed, M failed".
"""

import argparse
import os
import shutil
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crosscheck"))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import harness  # noqa: E402
import scenarios  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--js", required=True, help="the lorakeep-js binary")
    p.add_argument("--cs", required=True, help="the lorakeep-cs binary")
    p.add_argument("--ctl", required=True, help="the lorakeepctl binary")
    p.add_argument("--token-tool", required=True, help="lorakeep-test-token")
    p.add_argument("--token", choices=("softhsm", "nss"), default="softhsm")
    p.add_argument("--only", help="run only the scenarios whose name contains this")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)

    checks = harness.Checks(args.verbose)
    work = tempfile.mkdtemp(prefix="lorakeep-js-e2e-")
    env = None
    try:
        env = harness.Environment(args, work)
        env.start()
        for name, scenario in scenarios.ALL:
            if args.only and args.only not in name:
                continue
            print(f"== {name}")
            sys.stdout.flush()
            try:
                scenario(checks, env)
            except Exception:  # a scenario that breaks is a failed check, not a crash
                checks.record(f"{name}: ran to the end", False, traceback.format_exc())
                env.show_logs()
    except Exception:
        checks.record("environment set up", False, traceback.format_exc())
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
