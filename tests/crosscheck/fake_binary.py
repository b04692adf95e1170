#!/usr/bin/python3
"""Stand-in for the lorakeep join binary, speaking run.py's JSON-lines protocol.

Why it exists: run.py must be shown to FAIL when the binary is wrong, not just
to pass when it is right. With no option this answers correctly (from
lorawan_ref); `--break MODE` injects one realistic bug, and selftest.py checks
that run.py catches every mode. Keep it: it is the evidence the driver can fail.

    fake_binary.py [--rewrap] [--break MODE]   (reads cases on stdin, answers on stdout)

--rewrap also answers like crosscheck_main.cpp's remote mode: "rewrap" (the stored AppSKey
re-wrapped under kek_as) and "kek_labels" (from the case's kek_*_label, with --fixed-keks).

Modes (each hits every case it applies to):
  crypto / key handling
    ja_bytes        flip one bit of the encrypted join-accept
    ja_encrypt      AES-ECB *encrypt* the accept instead of decrypt (classic slip)
    ja_mic_key      1.1 OptNeg=1: join-accept MIC with NwkKey instead of JSIntKey
    cflist          leave the CFList out of the join-accept
    optneg0_appkey  1.1 OptNeg=0: AppSKey from AppKey (spec says NwkKey)
    optneg_ignored  1.1 OptNeg=0 handled like OptNeg=1 (4 keys, JSIntKey MIC)
    eui_order       1.1 OptNeg=1: JoinEUI in display order (not reversed) in key derivation
    rjcount_be      rejoins: RJcount big-endian in place of DevNonce
    key:NAME        corrupt one session key before wrapping (NwkSKey, AppSKey, FNwkSIntKey, ...)
    wrap_kek        wrap network keys under kek_as (KEKs swapped)
    stale_kek       wrap network keys under the previous case's kek_ns (stale cache)
    wrap_bytes      corrupt one byte of each wrapped key
    missing_key     omit AppSKey
    extra_key       add a JSIntKey entry to keys
  MIC verdict
    mic_ok          report the opposite mic_ok
    accept_bad_mic  never verify the request MIC (answers corrupted requests)
    keys_on_bad_mic mic_ok false, but still return join_accept and keys
  re-wrap (with --rewrap)
    rewrap_key      corrupt the AppSKey before re-wrapping it
    rewrap_kek      re-wrap the AppSKey under kek_ns
    rewrap_missing  leave "rewrap" out
    rewrap_on_bad_mic  answer "rewrap" for a request whose MIC fails
    label_swap      report the NS and AS KEK labels swapped
  protocol
    id              answer the first case with a wrong id
    drop            omit the last answer
    dup             answer the first case twice
    garbage         print a non-JSON line first
    exit            answer correctly, then exit with status 3
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lorawan_ref as ref  # noqa: E402

MODES = ("ja_bytes", "ja_encrypt", "ja_mic_key", "cflist", "optneg0_appkey",
         "optneg_ignored", "eui_order", "rjcount_be", "wrap_kek", "stale_kek", "wrap_bytes",
         "missing_key", "extra_key", "mic_ok", "accept_bad_mic", "keys_on_bad_mic",
         "id", "drop", "dup", "garbage", "exit",
         "rewrap_key", "rewrap_kek", "rewrap_missing", "rewrap_on_bad_mic", "label_swap")
KEY_NAMES = ("NwkSKey", "AppSKey", "FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey")
NETWORK_KEYS = ("NwkSKey", "FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey")


def H(s):
    return bytes.fromhex(s)


def flip(b: bytes, i: int = -1) -> bytes:
    x = bytearray(b)
    x[i] ^= 0x01
    return bytes(x)


def compute(case: dict, brk: str) -> dict:
    """The Join Server's answer, built from lorawan_ref primitives with the
    selected bug spliced in. Returns unwrapped keys (wrapping is done later)."""
    is_11 = case["mac_version"] == "1.1"
    app_key = H(case["app_key"])
    nwk_key = H(case["nwk_key"]) if is_11 else None
    join_eui, dev_eui = H(case["join_eui"]), H(case["dev_eui"])
    join_nonce, net_id, dev_addr = H(case["join_nonce"]), H(case["net_id"]), H(case["dev_addr"])
    dl, rx = H(case["dl_settings"])[0], H(case["rx_delay"])[0]
    cf = H(case.get("cf_list", ""))
    phy = H(case["phy_payload"])

    if brk == "cflist":
        cf = b""
    pt = ref.join_accept_plaintext(join_nonce, net_id, dev_addr, dl, rx, cf)
    encrypt = (lambda k, m: m[:1] + ref.aes_encrypt(k, m[1:])) if brk == "ja_encrypt" \
        else ref.encrypt_join_accept

    if case["kind"] == "rejoin":
        rj = ref.parse_rejoin_request(phy)
        js = ref.derive_js_keys(nwk_key, dev_eui)
        mic_ok = rj["rejoin_type"] != 1 or ref.verify_rejoin_request(js["JSIntKey"], phy)
        nonce = ref.rjcount_display(rj["rjcount"])
        if brk == "rjcount_be":
            nonce = nonce[::-1]
        m = ref.join_accept_mic_11(js["JSIntKey"], rj["rejoin_type"], join_eui, nonce, pt)
        ja = encrypt(js["JSEncKey"], pt + m)
        keys = ref.derive_session_keys_11(nwk_key, app_key, join_nonce, join_eui, nonce)
        return {"mic_ok": mic_ok, "join_accept": ja, "keys": keys}

    root = nwk_key if is_11 else app_key
    mic_ok = ref.verify_join_request(root, phy)
    dev_nonce = ref.parse_join_request(phy)["dev_nonce"]
    opt_neg = is_11 and (bool(dl & 0x80) or brk == "optneg_ignored")
    if opt_neg:
        js = ref.derive_js_keys(nwk_key, dev_eui)
        mic_key = nwk_key if brk == "ja_mic_key" else js["JSIntKey"]
        m = ref.join_accept_mic_11(mic_key, ref.JOIN_REQ_TYPE_JOIN, join_eui, dev_nonce, pt)
        keys = ref.derive_session_keys_11(nwk_key, app_key, join_nonce,
                                          join_eui[::-1] if brk == "eui_order" else join_eui,
                                          dev_nonce)
    else:
        m = ref.join_accept_mic_10(root, pt)
        keys = ref.derive_session_keys_10(root, join_nonce, net_id, dev_nonce)
        if is_11 and brk == "optneg0_appkey":
            keys["AppSKey"] = ref.derive_session_keys_10(app_key, join_nonce, net_id,
                                                         dev_nonce)["AppSKey"]
    return {"mic_ok": mic_ok, "join_accept": encrypt(root, pt + m), "keys": keys}


_previous_kek_ns = None  # for stale_kek: the KEK the last case used


def answer(case: dict, brk: str, rewrap: bool = False) -> dict:
    out = answer_keys(case, brk)
    if not rewrap:
        return out
    kek_ns, kek_as = H(case["kek_ns"]), H(case["kek_as"])
    if "keys" in out and brk != "rewrap_missing":
        app_s_key = compute(case, "")["keys"]["AppSKey"]
        if brk == "rewrap_key":
            app_s_key = flip(app_s_key)
        kek = kek_ns if brk == "rewrap_kek" else kek_as
        out["rewrap"] = {"AppSKey": ref.wrap(kek, app_s_key).hex().upper()}
    if brk == "rewrap_on_bad_mic" and "keys" not in out:
        out["rewrap"] = {"AppSKey": ref.wrap(kek_as, bytes(16)).hex().upper()}
    if "keys" in out and "kek_ns_label" in case:
        ns, as_ = case["kek_ns_label"], case["kek_as_label"]
        if brk == "label_swap":
            ns, as_ = as_, ns
        out["kek_labels"] = {n: (ns if n in NETWORK_KEYS else as_) for n in out["keys"]}
    return out


def answer_keys(case: dict, brk: str) -> dict:
    global _previous_kek_ns
    r = compute(case, brk)
    mic_ok = r["mic_ok"]
    if brk == "accept_bad_mic":
        mic_ok = True
    out = {"id": case["id"], "mic_ok": mic_ok}
    if brk == "mic_ok":
        out["mic_ok"] = not mic_ok
    if not (mic_ok or brk == "keys_on_bad_mic"):
        out["error"] = "MIC mismatch"
        return out

    ja = r["join_accept"]
    if brk == "ja_bytes":
        ja = flip(ja)
    out["join_accept"] = ja.hex().upper()

    kek_ns, kek_as = H(case["kek_ns"]), H(case["kek_as"])
    if brk == "stale_kek":
        kek_ns, _previous_kek_ns = (_previous_kek_ns or kek_ns), kek_ns
    keys = dict(r["keys"])
    if brk.startswith("key:") and brk[4:] in keys:
        keys[brk[4:]] = flip(keys[brk[4:]])
    if brk == "missing_key":
        del keys["AppSKey"]
    wrapped = {}
    for name, k in keys.items():
        kek = kek_ns if name in NETWORK_KEYS else kek_as
        if brk == "wrap_kek" and name in NETWORK_KEYS:
            kek = kek_as
        w = ref.wrap(kek, k)
        if brk == "wrap_bytes":
            w = flip(w, 5)
        wrapped[name] = w.hex().upper()
    if brk == "extra_key":
        wrapped["JSIntKey"] = ref.wrap(kek_ns, bytes(16)).hex().upper()
    out["keys"] = wrapped
    return out


def main():
    p = argparse.ArgumentParser(description="fake lorakeep join binary (see module doc)")
    p.add_argument("--break", dest="brk", default="",
                   choices=("",) + MODES + tuple(f"key:{n}" for n in KEY_NAMES),
                   help="inject one bug; default: answer correctly")
    p.add_argument("--rewrap", action="store_true",
                   help="also answer rewrap and kek_labels (crosscheck_main.cpp's remote mode)")
    a = p.parse_args()

    lines = []
    for raw in sys.stdin:
        if raw.strip():
            lines.append(json.dumps(answer(json.loads(raw), a.brk, a.rewrap)))

    if a.brk == "garbage":
        print("this is not JSON")
    if a.brk == "id" and lines:
        first = json.loads(lines[0])
        first["id"] += 1_000_000
        lines[0] = json.dumps(first)
    if a.brk == "dup" and lines:
        lines.insert(1, lines[0])
    if a.brk == "drop" and lines:
        lines.pop()
    for line in lines:
        print(line)
    return 3 if a.brk == "exit" else 0


if __name__ == "__main__":
    sys.exit(main())
