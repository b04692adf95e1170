"""The tally of an end-to-end test written in Python: each check printed as it is made
("ok   name" or "FAIL name: detail"), counted, and summed up by the caller in the line
"CASES: N passed, M failed" that tools/test-summary reads.

    sys.path.insert(0, "<source>/tests/support")
    from checks import Checks
"""

import sys


class Checks:
    def __init__(self, verbose=False):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose
        self.on_failure = None  # called after each failure (e.g. to print a server's stderr)

    def record(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   {name}" + (f"  [{detail}]" if self.verbose and detail else ""))
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")
            if self.on_failure:
                self.on_failure()
        sys.stdout.flush()
        return ok
