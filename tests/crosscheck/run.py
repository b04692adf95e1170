#!/usr/bin/python3
"""Randomized cross-check of a lorakeep join binary against lorawan_ref.

    /usr/bin/python3 tests/crosscheck/run.py --binary PATH [--count N] [--seed S]
        [--kek-pool K | --fixed-keks NS_LABEL=HEXFILE AS_LABEL=HEXFILE] [--expect-rewrap]
        [--timeout SEC] [--dump-cases FILE] [-- ARGS FOR THE BINARY...]

Why randomized: the KAT vectors pin the formulas, but a handful of fixed
inputs cannot catch e.g. a byte-order slip that only shows for some values,
a CFList-length branch, OptNeg handling, or state leaking between requests.
So we generate, for EACH of mac_version 1.0.2, 1.0.4 and 1.1, N valid joins
plus ~5% with a corrupted MIC, and N/5 LoRaWAN 1.1 rejoins over types 0/1/2
(type 1, whose MIC the JS checks, also with some corrupted MICs), shuffle them
so the binary sees versions interleaved, and compare its answers byte for byte
with lorawan_ref. Every key, EUI and nonce comes from random.Random(seed);
KEKs are drawn from a pool of 16 random keys (see pick_keks for why).

Protocol (one JSON object per line; hex upper case; ids in BE display order):
  stdin, one case per line:
    {"id", "kind": "join"|"rejoin", "mac_version", "app_key", "nwk_key" (1.1),
     "kek_ns", "kek_as", "phy_payload", "join_eui", "dev_eui", "join_nonce",
     "net_id", "dev_addr", "dl_settings", "rx_delay", "cf_list" (optional),
     "kek_ns_label", "kek_as_label" (only with --fixed-keks)}
  stdout, one answer per case:
    {"id", "mic_ok": bool, "join_accept": hex (only if mic_ok),
     "keys": {name: RFC 3394 wrapped hex} (only if mic_ok), "error" (optional),
     "rewrap": {"AppSKey": wrapped hex} (only if mic_ok; required with --expect-rewrap),
     "kek_labels": {name: KEK label of its envelope} (optional; checked with --fixed-keks)}
  keys: NwkSKey + AppSKey for 1.0.x and 1.1 OptNeg=0; FNwkSIntKey,
  SNwkSIntKey, NwkSEncKey + AppSKey for 1.1 OptNeg=1 and all rejoins.
  Network keys are wrapped under kek_ns, AppSKey under kek_as.
  Rejoin types 0/2 carry a MIC keyed with SNwkSIntKey, which only the Network
  Server has (it verifies them before forwarding), so the expected mic_ok for
  them is always true.

--fixed-keks: every case uses these two KEKs (hex files) under these labels, for a
binary that cannot import KEKs itself: the remote mode of crosscheck_main.cpp talks to a
running lorakeep-cs whose token the harness prepared with exactly these KEKs.
--expect-rewrap: each accepted case must also report the AppSKey re-wrapped from the
stored copy (RewrapAppSKeyOp) under kek_as; it is unwrapped and compared like the keys.

Output: a header with the seed, at most 10 mismatches (case id, field,
detail), a per-field tally, and as LAST line "CASES: N passed, M failed".
Exit 1 if any case fails, the binary exits non-zero / times out, or the
number of answers differs from the number of cases.
"""

import argparse
import collections
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lorawan_ref as ref  # noqa: E402
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap  # noqa: E402

VERSIONS = ("1.0.2", "1.0.4", "1.1")
NETWORK_KEYS = ("NwkSKey", "FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey")
MAX_REPORTED = 10


def hx(b: bytes) -> str:
    return b.hex().upper()


# --------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------

def flip_mic_bit(rng: random.Random, phy: bytes) -> bytes:
    """Flip one random bit of the 4-byte MIC; the rest of the frame is intact,
    so only a real MIC check (not a parse error) can reject it."""
    bit = rng.randrange(32)
    b = bytearray(phy)
    b[-4 + bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def pick_keks(rng: random.Random, pool) -> tuple:
    """(kek_ns, kek_as), always two different keys so a swap is detectable.

    With a pool, KEKs are drawn from it: a real Join Server has one KEK per
    NS/AS peer, lorakeep keeps them as token objects, and a fresh pair per
    case would pile thousands of objects onto the SoftHSM token (measured:
    lookups slow down with every object, the run goes quadratic). A pool of
    16 still changes the KEK between most consecutive cases, so using a
    previous case's KEK is caught. Without a pool, every case gets fresh KEKs.
    """
    if isinstance(pool, FixedKeks):
        return pool.ns, pool.as_
    if not pool:
        return rng.randbytes(16), rng.randbytes(16)
    ns, as_ = rng.sample(pool, 2)
    return ns, as_


class FixedKeks:
    """--fixed-keks: the two KEKs (and their labels) every case uses."""

    def __init__(self, specs):
        (self.ns_label, self.ns), (self.as_label, self.as_) = (self._read(s) for s in specs)
        if self.ns == self.as_:
            raise ValueError("--fixed-keks: the two KEKs must differ (a swap must be detectable)")

    @staticmethod
    def _read(spec):
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"--fixed-keks wants LABEL=HEXFILE, got {spec!r}")
        with open(path) as f:
            key = bytes.fromhex("".join(f.read().split()))
        if len(key) not in (16, 24, 32):
            raise ValueError(f"{path}: a KEK is 16, 24 or 32 bytes, got {len(key)}")
        return label, key


def common_fields(rng: random.Random, mac_version: str, opt_neg: bool, pool) -> dict:
    """Random device/network parameters shared by joins and rejoins."""
    kek_ns, kek_as = pick_keks(rng, pool)
    return {
        "mac_version": mac_version,
        "app_key": rng.randbytes(16),
        "nwk_key": rng.randbytes(16) if mac_version == "1.1" else None,
        "kek_ns": kek_ns,
        "kek_as": kek_as,
        "join_eui": rng.randbytes(8),
        "dev_eui": rng.randbytes(8),
        "join_nonce": rng.randbytes(3),
        "net_id": rng.randbytes(3),
        "dev_addr": rng.randbytes(4),
        # DLSettings: bit 7 OptNeg (RFU=0 in 1.0.x), 6:4 RX1DRoffset, 3:0 RX2 DR.
        "dl_settings": (0x80 if opt_neg else 0) | rng.randrange(8) << 4 | rng.randrange(16),
        "rx_delay": rng.randrange(16),  # upper nibble RFU
        # CFList in ~half the cases, in every version: it switches the accept
        # between 16 and 32 encrypted bytes, a separate code path. The last
        # byte is CFListType (0 = frequencies, 1 = channel mask).
        "cf_list": rng.randbytes(15) + bytes([rng.randrange(2)]) if rng.random() < 0.5 else b"",
    }


def make_join(rng, pool, mac_version, corrupt):
    is_11 = mac_version == "1.1"
    opt_neg = is_11 and rng.random() >= 0.10  # ~10% of 1.1 joins use OptNeg=0
    f = common_fields(rng, mac_version, opt_neg, pool)
    # The device signs with AppKey (1.0.x) or NwkKey (1.1).
    phy = ref.join_request(f["nwk_key"] if is_11 else f["app_key"],
                           f["join_eui"], f["dev_eui"], rng.randbytes(2))
    if corrupt:
        phy = flip_mic_bit(rng, phy)
    f.update(kind="join", phy_payload=phy, corrupt=corrupt)
    return f


def make_rejoin(rng, pool, rejoin_type, corrupt):
    f = common_fields(rng, "1.1", True, pool)  # rejoins only exist with 1.1 networks: OptNeg=1
    rjcount = rng.randrange(1 << 16)
    if rejoin_type == 1:
        key = ref.derive_js_keys(f["nwk_key"], f["dev_eui"])["JSIntKey"]
    else:
        key = rng.randbytes(16)  # the NS's SNwkSIntKey: unknown to the JS, by design
    phy = ref.rejoin_request(rejoin_type, key, f["dev_eui"], rjcount,
                             net_id=f["net_id"], join_eui=f["join_eui"])
    if corrupt:
        phy = flip_mic_bit(rng, phy)
    f.update(kind="rejoin", phy_payload=phy, corrupt=corrupt, rejoin_type=rejoin_type)
    return f


def generate(rng: random.Random, count: int, kek_pool: int, fixed=None) -> list:
    pool = fixed if fixed else [rng.randbytes(16) for _ in range(kek_pool)]
    cases = []
    n_bad = math.ceil(count * 0.05)
    for v in VERSIONS:
        cases += [make_join(rng, pool, v, corrupt=False) for _ in range(count)]
        cases += [make_join(rng, pool, v, corrupt=True) for _ in range(n_bad)]
    type1_seen = 0
    for i in range(count // 5):
        t = i % 3  # spread evenly over types 0, 1, 2
        corrupt = False
        if t == 1:
            corrupt = type1_seen % 10 == 0  # first type-1 rejoin and every 10th after it
            type1_seen += 1
        cases.append(make_rejoin(rng, pool, t, corrupt))
    # Interleave versions/kinds so per-request state leaks in the binary show up.
    rng.shuffle(cases)
    for i, c in enumerate(cases, start=1):
        c["id"] = i
        c["expected"] = expected_answer(c)
    return cases


def expected_answer(c: dict) -> dict:
    return ref.js_answer(c["mac_version"], c["app_key"], c["nwk_key"], c["phy_payload"],
                         c["join_eui"], c["dev_eui"], c["join_nonce"], c["net_id"],
                         c["dev_addr"], c["dl_settings"], c["rx_delay"], c["cf_list"])


def case_line(c: dict, fixed=None) -> str:
    """Serialize a case exactly as the binary receives it."""
    d = {"id": c["id"], "kind": c["kind"], "mac_version": c["mac_version"],
         "app_key": hx(c["app_key"])}
    if c["nwk_key"] is not None:
        d["nwk_key"] = hx(c["nwk_key"])
    d.update({
        "kek_ns": hx(c["kek_ns"]), "kek_as": hx(c["kek_as"]),
        "phy_payload": hx(c["phy_payload"]),
        "join_eui": hx(c["join_eui"]), "dev_eui": hx(c["dev_eui"]),
        "join_nonce": hx(c["join_nonce"]), "net_id": hx(c["net_id"]),
        "dev_addr": hx(c["dev_addr"]),
        "dl_settings": "%02X" % c["dl_settings"], "rx_delay": "%02X" % c["rx_delay"],
    })
    if c["cf_list"]:
        d["cf_list"] = hx(c["cf_list"])
    if fixed:
        d["kek_ns_label"], d["kek_as_label"] = fixed.ns_label, fixed.as_label
    return json.dumps(d)


def category(c: dict) -> str:
    """Kind of case, for the summary: version/type, OptNeg, corrupted MIC."""
    if c["kind"] == "rejoin":
        s = f"rejoin-type{c['rejoin_type']}"
    else:
        s = f"join-{c['mac_version']}"
        if c["mac_version"] == "1.1":
            s += "-OptNeg%d" % (c["dl_settings"] >> 7)
    return s + ("-badMIC" if c["corrupt"] else "")


def describe(c: dict) -> str:
    """Short human label so a mismatch can be triaged without the dump."""
    return category(c) + ("+CFList" if c["cf_list"] else "")


# --------------------------------------------------------------------------
# Answer checking
# --------------------------------------------------------------------------

def parse_hex(v):
    if not isinstance(v, str):
        raise ValueError(f"not a hex string: {v!r}")
    return bytes.fromhex(v)


def check_answer(c: dict, ans: dict, expect_rewrap: bool = False, fixed=None) -> list:
    """Return a list of (field, detail) mismatches for one case."""
    exp = c["expected"]
    errs = []
    mic_ok = ans.get("mic_ok")
    if not isinstance(mic_ok, bool):
        return [("mic_ok", f"missing or not a bool: {mic_ok!r}")]
    if mic_ok != exp["mic_ok"]:
        detail = f"got {mic_ok}, want {exp['mic_ok']}"
        if ans.get("error"):
            detail += f" (binary error: {ans['error']})"
        errs.append(("mic_ok", detail))
        return errs

    if not exp["mic_ok"]:
        # A rejected request must not leak an accept or session keys.
        for field in ("join_accept", "keys", "rewrap"):
            if ans.get(field) is not None:
                errs.append((field, "present although the MIC is invalid"))
        return errs

    # join_accept: exact bytes, then an independent device-side look at it.
    try:
        ja = parse_hex(ans.get("join_accept"))
    except ValueError as e:
        errs.append(("join_accept", str(e)))
    else:
        if ja != exp["join_accept"]:
            errs.append(("join_accept", f"got {hx(ja)}, want {hx(exp['join_accept'])}; "
                         + device_view(c, ja)))

    keys = ans.get("keys")
    if not isinstance(keys, dict):
        errs.append(("keys", f"missing or not an object: {keys!r}"))
        return errs
    want_names, got_names = set(exp["keys"]), set(keys)
    if got_names != want_names:
        errs.append(("keys", f"names {sorted(got_names)}, want {sorted(want_names)}"))
    for name in sorted(want_names & got_names):
        kek, kek_name = ((c["kek_ns"], "kek_ns") if name in NETWORK_KEYS
                         else (c["kek_as"], "kek_as"))
        try:
            wrapped = parse_hex(keys[name])
            if len(wrapped) != 24:
                raise ValueError(f"wrapped length {len(wrapped)}, want 24")
            plain = ref.unwrap(kek, wrapped)
        except InvalidUnwrap:
            other = c["kek_as"] if kek_name == "kek_ns" else c["kek_ns"]
            hint = ""
            try:
                ref.unwrap(other, wrapped)
                hint = " (it unwraps under the other KEK: KEKs swapped)"
            except InvalidUnwrap:
                pass
            errs.append((f"keys.{name}", f"does not unwrap under {kek_name}{hint}"))
            continue
        except ValueError as e:
            errs.append((f"keys.{name}", str(e)))
            continue
        if plain != exp["keys"][name]:
            errs.append((f"keys.{name}", f"unwrapped {hx(plain)}, want {hx(exp['keys'][name])}"))
    if expect_rewrap:
        errs += check_rewrap(c, ans.get("rewrap"))
    if fixed and ans.get("kek_labels") is not None:
        errs += check_labels(exp, ans["kek_labels"], fixed)
    return errs


def check_rewrap(c: dict, rewrap) -> list:
    """The AppSKey re-wrapped from the stored copy must be the AppSKey, under kek_as."""
    if not isinstance(rewrap, dict) or "AppSKey" not in rewrap:
        detail = f"missing: {rewrap!r}"
        if isinstance(rewrap, dict) and rewrap.get("error"):
            detail += f" (binary error: {rewrap['error']})"
        return [("rewrap.AppSKey", detail)]
    want = c["expected"]["keys"]["AppSKey"]
    try:
        wrapped = parse_hex(rewrap["AppSKey"])
        if len(wrapped) != 24:
            raise ValueError(f"wrapped length {len(wrapped)}, want 24")
        plain = ref.unwrap(c["kek_as"], wrapped)
    except InvalidUnwrap:
        return [("rewrap.AppSKey", "does not unwrap under kek_as")]
    except ValueError as e:
        return [("rewrap.AppSKey", str(e))]
    if plain != want:
        return [("rewrap.AppSKey", f"unwrapped {hx(plain)}, want {hx(want)}")]
    return []


def check_labels(exp: dict, labels, fixed) -> list:
    """Each envelope must name the KEK it was wrapped under."""
    if not isinstance(labels, dict):
        return [("kek_labels", f"not an object: {labels!r}")]
    errs = []
    for name in sorted(exp["keys"]):
        want = fixed.ns_label if name in NETWORK_KEYS else fixed.as_label
        if labels.get(name) != want:
            errs.append((f"kek_labels.{name}", f"got {labels.get(name)!r}, want {want!r}"))
    return errs


def device_view(c: dict, ja: bytes) -> str:
    """Decrypt the binary's join-accept as the device would, to say *what*
    differs (unreadable, MIC wrong, or a field wrong) rather than just 'bytes'."""
    try:
        if c["kind"] == "rejoin":
            rj = ref.parse_rejoin_request(c["phy_payload"])
            nonce, jrt = ref.rjcount_display(rj["rjcount"]), rj["rejoin_type"]
        else:
            nonce, jrt = ref.parse_join_request(c["phy_payload"])["dev_nonce"], ref.JOIN_REQ_TYPE_JOIN
        dev = ref.device_open_join_accept(c["mac_version"], c["app_key"], c["nwk_key"], ja,
                                          c["join_eui"], nonce, jrt, c["dev_eui"])
    except ValueError as e:
        return f"device cannot parse it: {e}"
    want_pt = ref.join_accept_plaintext(c["join_nonce"], c["net_id"], c["dev_addr"],
                                        c["dl_settings"], c["rx_delay"], c["cf_list"])
    if dev["plaintext"] != want_pt:
        return f"device decrypts fields {hx(dev['plaintext'])}, want {hx(want_pt)}"
    return "fields decrypt correctly but device MIC check " + ("passes" if dev["mic_ok"] else "FAILS")


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="join binary speaking the JSON-lines protocol")
    p.add_argument("--count", type=int, default=1000, help="valid joins per MAC version (default 1000)")
    p.add_argument("--seed", type=int, help="RNG seed (default: random, printed)")
    # A hang guard, not a performance target: SoftHSM runs ~0.2 s per case.
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds the binary may take in total (default 1800)")
    p.add_argument("--kek-pool", type=int, default=16,
                   help="draw KEKs from this many random keys (default 16; 0 = fresh KEKs per case)")
    p.add_argument("--fixed-keks", nargs=2, metavar=("NS_LABEL=HEXFILE", "AS_LABEL=HEXFILE"),
                   help="every case uses these two KEKs (for a binary that cannot import KEKs)")
    p.add_argument("--expect-rewrap", action="store_true",
                   help="require and check the re-wrapped stored AppSKey in every accepted answer")
    p.add_argument("--dump-cases", metavar="FILE", help="also write the input lines to FILE")
    p.add_argument("binary_args", nargs="*", help="after --: extra arguments for the binary")
    a = p.parse_args(argv)
    if a.count < 1:
        p.error("--count must be at least 1")
    if a.kek_pool == 1 or a.kek_pool < 0:
        p.error("--kek-pool must be 0 or at least 2 (kek_ns and kek_as must differ)")

    fixed = None
    if a.fixed_keks:
        try:
            fixed = FixedKeks(a.fixed_keks)
        except (OSError, ValueError) as e:
            p.error(str(e))

    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(6), "big")
    repro = f"--seed {seed} --count {a.count} --kek-pool {a.kek_pool}"
    if a.fixed_keks:
        repro += " --fixed-keks " + " ".join(a.fixed_keks)
    if a.expect_rewrap:
        repro += " --expect-rewrap"
    print(f"seed: {seed}  (reproduce with {repro})")
    rng = random.Random(seed)
    cases = generate(rng, a.count, a.kek_pool, fixed)
    tally = collections.Counter(category(c) for c in cases)
    print(f"cases: {len(cases)} = " + ", ".join(f"{v} {k}" for k, v in sorted(tally.items())))

    stdin_data = "".join(case_line(c, fixed) + "\n" for c in cases)
    if a.dump_cases:
        with open(a.dump_cases, "w") as f:
            f.write(stdin_data)

    fatal = []  # problems with the run as a whole, reported before the mismatches
    cmd = [a.binary] + a.binary_args
    try:
        proc = subprocess.run(cmd, input=stdin_data, capture_output=True, text=True,
                              timeout=a.timeout)
        out, rc, err = proc.stdout, proc.returncode, proc.stderr
    except FileNotFoundError:
        out, rc, err = "", None, ""
        fatal.append(f"cannot execute {a.binary}")
    except PermissionError:
        out, rc, err = "", None, ""
        fatal.append(f"{a.binary} is not executable")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        rc, err = None, ""
        fatal.append(f"binary timed out after {a.timeout}s")
    if rc not in (0, None):
        fatal.append(f"binary exited with status {rc}")

    # Index answers by id; anything unparseable or unmatched is a failure.
    answers, dup_ids = {}, set()
    by_id = {c["id"]: c for c in cases}
    n_lines = 0
    for lineno, line in enumerate(out.splitlines(), start=1):
        if not line.strip():
            continue
        n_lines += 1
        try:
            ans = json.loads(line)
            ans_id = ans["id"]
            if not isinstance(ans_id, int) or isinstance(ans_id, bool):
                raise TypeError("id is not an integer")
        except (ValueError, KeyError, TypeError) as e:
            fatal.append(f"stdout line {lineno} is not an answer ({e}): {line[:120]!r}")
            continue
        if ans_id not in by_id:
            fatal.append(f"stdout line {lineno} answers unknown id {ans_id}")
        elif ans_id in answers:
            dup_ids.add(ans_id)
        else:
            answers[ans_id] = ans
    if n_lines != len(cases):
        fatal.append(f"binary returned {n_lines} answer lines for {len(cases)} cases")

    mismatches = []  # (case, field, detail)
    for c in cases:
        if c["id"] in dup_ids:
            mismatches.append((c, "id", "answered more than once"))
        elif c["id"] not in answers:
            mismatches.append((c, "id", "no answer"))
        else:
            mismatches += [(c, f, d) for f, d in
                           check_answer(c, answers[c["id"]], a.expect_rewrap, fixed)]
    failed_ids = {c["id"] for c, _, _ in mismatches}

    for c, field, detail in mismatches[:MAX_REPORTED]:
        print(f"MISMATCH case {c['id']} [{describe(c)}] {field}: {detail}")
    if len(mismatches) > MAX_REPORTED:
        print(f"... {len(mismatches) - MAX_REPORTED} more mismatches not shown")
    if mismatches:
        per_field = collections.Counter(f for _, f, _ in mismatches)
        print("mismatches by field: " + ", ".join(f"{f} {n}" for f, n in per_field.most_common()))
        print(f"reproduce: run.py --binary {a.binary} {repro}"
              + (" -- " + " ".join(a.binary_args) if a.binary_args else ""))

    # Run-level problems go last, right above the totals: every answer can be
    # right and the run still fail (e.g. non-zero exit), and that must not
    # scroll out of sight.
    if fatal and err.strip():
        print("binary stderr (last 20 lines):")
        for line in err.strip().splitlines()[-20:]:
            print(f"  | {line}")
    for msg in fatal:
        print(f"FATAL: {msg}")

    n_failed = len(failed_ids)
    print(f"CASES: {len(cases) - n_failed} passed, {n_failed} failed")
    return 1 if (n_failed or fatal) else 0


if __name__ == "__main__":
    sys.exit(main())
