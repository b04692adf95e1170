#!/usr/bin/python3
"""tools/bench-plot on made-up reports: a normal run, a run where no join succeeded, a
report without a measured load, and a file that is no report. Each must end with the right
exit status and a clear message, and never with a Python warning or traceback."""

import json
import os
import random
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLOT = os.path.join(TOP, "tools", "bench-plot")


def report(ok_latencies_ms, failed):
    bounds = [round(0.05 * 1.2 ** i, 4) for i in range(70)]
    counts = [0] * (len(bounds) + 1)
    for v in ok_latencies_ms:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    s = sorted(ok_latencies_ms)

    def q(p):
        return s[min(len(s) - 1, int(p * len(s)))] if s else 0.0

    lat = {"count": len(s), "max": max(s, default=0.0), "mean": sum(s) / len(s) if s else 0.0,
           "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999)}
    rows = [[i / 1000, v, True] for i, v in enumerate(ok_latencies_ms)]
    rows += [[i / 1000, 3.0, False] for i in range(failed)]
    seconds = max(1, len(rows) // 1000 + 1)
    timeline = [{"t": t, "ok": len(s) // seconds, "errors": failed // seconds,
                 "p50_ms": lat["p50"], "p99_ms": lat["p99"], "max_ms": lat["max"]}
                for t in range(seconds)]
    return {"label": "plot test", "machine": {"cpu_model": "test", "cpus_online": 2},
            "devices": {"registry": 1000},
            "load": {"ok_per_s": len(s) / seconds, "connections": 4, "rate_target": 0.0,
                     "latency_ms": lat, "timeline": timeline,
                     "samples": {"columns": ["t", "ms", "ok"], "every": 1, "rows": rows},
                     "histogram": {"upper_bounds_ms": bounds, "counts": counts}}}


def draw(work, name, content):
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    png = os.path.join(work, name + ".png")
    p = subprocess.run([PLOT, path, png], capture_output=True, text=True, timeout=120)
    size = os.path.getsize(png) if os.path.exists(png) else 0
    return p.returncode, p.stderr, size


def main():
    failed = 0

    def check(name, ok, detail):
        nonlocal failed
        print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
        failed += 0 if ok else 1

    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="lorakeep-plot-") as work:
        code, err, size = draw(work, "normal",
                               report([rng.lognormvariate(1, 0.5) for _ in range(3000)], 5))
        check("a normal run: drawn, silent", code == 0 and err == "" and size > 50000,
              f"exit {code}, {size} bytes, stderr {err!r}")
        code, err, size = draw(work, "all-failed", report([], 50))
        check("no join succeeded: drawn, silent", code == 0 and err == "" and size > 0,
              f"exit {code}, {size} bytes, stderr {err!r}")
        no_load = report([1.0], 0)
        del no_load["load"]
        code, err, size = draw(work, "no-load", no_load)
        check("no measured load: exit 1, said", code == 1 and "no measured load" in err
              and "Traceback" not in err and size == 0, f"exit {code}, stderr {err!r}")
        code, err, size = draw(work, "not-json", "{ this is not JSON")
        check("not a report: exit 1, said", code == 1 and "cannot read" in err
              and "Traceback" not in err and size == 0, f"exit {code}, stderr {err!r}")
    print(f"CASES: {4 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
