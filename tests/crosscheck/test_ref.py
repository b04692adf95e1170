#!/usr/bin/python3
"""Validate lorawan_ref against every vector in tests/data/lorawan-join-kat.json.

Why: run.py trusts lorawan_ref as the oracle for lorakeep, so the oracle must
first reproduce values published by other projects (RFCs, TTN lorawan-stack,
ChirpStack, lora-packet, brocaar/lorawan). Every entry of every section is a
case; an unknown section fails loudly so new vectors cannot be skipped silently.

Run with the Debian interpreter (it has python3-cryptography):
    /usr/bin/python3 tests/crosscheck/test_ref.py [path/to/kat.json]
Last line is "CASES: N passed, M failed"; exit status 1 on any failure.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lorawan_ref as ref  # noqa: E402

DEFAULT_KAT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "data", "lorawan-join-kat.json")


def H(s):
    return bytes.fromhex(s)


def hx(b):
    return b.hex().upper()


class Case:
    """Collects mismatches for one vector; a case passes if it has none."""

    def __init__(self):
        self.errors = []

    def eq(self, what, got, want):
        if isinstance(got, bytes):
            got = hx(got)
        if isinstance(want, bytes):
            want = hx(want)
        if str(got).upper() != str(want).upper():
            self.errors.append(f"{what}: got {got}, want {want}")

    def true(self, what, cond):
        if not cond:
            self.errors.append(f"{what}: check failed")


# One checker per KAT section. Each takes (case, entry).

def check_cmac(c, e):
    c.eq("cmac", ref.aes_cmac(H(e["key"]), H(e["message"])), e["cmac"])


def check_key_wrap(c, e):
    c.eq("wrap", ref.wrap(H(e["kek"]), H(e["key"])), e["wrapped"])
    c.eq("unwrap", ref.unwrap(H(e["kek"]), H(e["wrapped"])), e["key"])


def check_session_keys(c, e):
    if e["lorawan"] == "1.0":
        # 1.0 entries carry the root key under "nwk_key"; in 1.0 that is the AppKey.
        got = ref.derive_session_keys_10(H(e["nwk_key"]), H(e["join_nonce"]),
                                         H(e["net_id"]), H(e["dev_nonce"]))
    elif e["lorawan"] == "1.1":
        # TTN's key_derivation_test derives AppSKey with the same key it uses
        # for the network keys, so its entry has no separate app_key.
        app_key = e.get("app_key", e["nwk_key"])
        got = ref.derive_session_keys_11(H(e["nwk_key"]), H(app_key), H(e["join_nonce"]),
                                         H(e["join_eui"]), H(e["dev_nonce"]))
    else:
        raise ValueError(f"unknown lorawan {e['lorawan']!r}")
    # Some entries publish only one of the keys; check exactly those given.
    for name, want in e["expect"].items():
        c.eq(name, got[name], want)


def check_js_keys(c, e):
    got = ref.derive_js_keys(H(e["nwk_key"]), H(e["dev_eui"]))
    c.eq("JSIntKey", got["JSIntKey"], e["JSIntKey"])
    c.eq("JSEncKey", got["JSEncKey"], e["JSEncKey"])


def check_join_request_mic(c, e):
    msg = H(e["mic_input"])
    c.eq("mic", ref.mic(H(e["key"]), msg), e["mic"])
    # Round-trip through the encoder where the bytes form a real join-request,
    # so the field order/endianness of join_request() is checked too.
    if msg[0] == ref.MHDR_JOIN_REQUEST and len(msg) == 19:
        f = ref.parse_join_request(msg + H(e["mic"]))
        c.eq("encode", ref.join_request(H(e["key"]), f["join_eui"], f["dev_eui"], f["dev_nonce"]),
             msg + H(e["mic"]))


def check_join_accept(c, e):
    key, pt = H(e["key"]), H(e["plaintext_without_mic"])
    prefix_key = next((k for k in e if k.startswith("mic_prefix")), None)
    if prefix_key:
        # 1.1 OptNeg=1 form: prefix is JoinReqType | JoinEUI | DevNonce on air.
        prefix = H(e[prefix_key])
        c.eq("mic(1.1)", ref.mic(key, prefix + pt), e["mic"])
        # Same through the structured builder (undo the on-air reversal).
        c.eq("join_accept_mic_11",
             ref.join_accept_mic_11(key, prefix[0], prefix[1:9][::-1], prefix[9:11][::-1], pt),
             e["mic"])
    else:
        c.eq("mic(1.0)", ref.join_accept_mic_10(key, pt), e["mic"])
    if "phy_payload" in e:
        c.eq("encrypt", ref.encrypt_join_accept(key, pt + H(e["mic"])), e["phy_payload"])
        c.eq("decrypt", ref.decrypt_join_accept(key, H(e["phy_payload"])), pt + H(e["mic"]))


def check_rejoin_mic(c, e):
    msg = H(e["mic_input"])
    c.eq("mic", ref.mic(H(e["key"]), msg), e["mic"])
    f = ref.parse_rejoin_request(msg + H(e["mic"]))
    c.eq("rejoin_type", f["rejoin_type"], e["rejoin_type"])
    enc = ref.rejoin_request(f["rejoin_type"], H(e["key"]), f["dev_eui"], f["rjcount"],
                             net_id=f.get("net_id"), join_eui=f.get("join_eui"))
    c.eq("encode", enc, msg + H(e["mic"]))


def check_join_flow(c, e):
    app_key, nwk_key = H(e["app_key"]), H(e["nwk_key"])
    join_eui, dev_eui, dev_nonce = H(e["join_eui"]), H(e["dev_eui"]), H(e["dev_nonce"])
    is_11 = e["mac_version"].startswith("1.1")
    jr = ref.join_request(nwk_key if is_11 else app_key, join_eui, dev_eui, dev_nonce)
    c.eq("join_request", jr, e["join_request"])

    dl, rx = H(e["dl_settings"])[0], H(e["rx_delay"])[0]
    cf = H(e.get("cf_list", ""))
    ans = ref.js_answer(e["mac_version"], app_key, nwk_key, H(e["join_request"]), join_eui,
                        dev_eui, H(e["join_nonce"]), H(e["net_id"]), H(e["dev_addr"]), dl, rx, cf)
    c.true("mic_ok", ans["mic_ok"])
    if not ans["mic_ok"]:
        return
    c.eq("join_accept", ans["join_accept"], e["join_accept"])
    for name, want in e["expect"].items():
        c.eq(name, ans["keys"][name], want)
    # The published MIC is of the plaintext, visible only after device-side decrypt.
    dev = ref.device_open_join_accept(e["mac_version"], app_key, nwk_key, H(e["join_accept"]),
                                      join_eui, dev_nonce, dev_eui=dev_eui)
    c.true("device MIC check", dev["mic_ok"])
    c.eq("join_accept_mic", ref.decrypt_join_accept(
        nwk_key if is_11 else app_key, H(e["join_accept"]))[-4:], e["join_accept_mic"])


CHECKERS = {
    "cmac": check_cmac,
    "key_wrap": check_key_wrap,
    "session_keys": check_session_keys,
    "js_keys": check_js_keys,
    "join_request_mic": check_join_request_mic,
    "join_accept": check_join_accept,
    "rejoin_mic": check_rejoin_mic,
    "join_flow": check_join_flow,
}


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT_KAT
    with open(path) as f:
        kat = json.load(f)

    passed = failed = 0
    for section, entries in kat.items():
        if not isinstance(entries, list):
            continue  # "about" and other prose
        checker = CHECKERS.get(section)
        if checker is None:
            print(f"FAIL {section}: no checker for this section ({len(entries)} vectors unchecked)")
            failed += len(entries)
            continue
        for i, e in enumerate(entries):
            c = Case()
            try:
                checker(c, e)
            except Exception as ex:  # a crash on a vector is a failure, not an abort
                c.errors.append(f"exception {type(ex).__name__}: {ex}")
            label = f"{section}[{i}] ({e.get('source', '?')})"
            if c.errors:
                failed += 1
                print(f"FAIL {label}")
                for err in c.errors:
                    print(f"     {err}")
            else:
                passed += 1
                print(f"ok   {label}")

    print(f"CASES: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
