"""What lorakeep-js must do, scenario by scenario (issue: "lorakeep-js: the Backend
Interfaces Join Server", Tests). Each scenario records checks; none stops the others."""

import json
import os
import re
import sqlite3
import threading

import harness as h
from harness import AS_ID, AS_OTHER, JOIN_EUI, NS_A, NS_B, NS_C

# Devices provisioned once and shared by the scenarios that need one of each kind.
_devices = {}


def device(env, mac: str, **kw) -> h.Device:
    key = (mac, tuple(sorted(kw.items())))
    if key not in _devices:
        _devices[key] = env.add_device(h.Device(mac, **kw))
    return _devices[key]


def ns_client(env, sender=NS_A):
    return h.Client(env, env.certs[sender])


def session_row(env, dev_eui: str, session_key_id: str):
    """(length of stored_app_s_key, as_kek_label, as_app_s_key) of one session."""
    db = sqlite3.connect(f"file:{env.registry}?mode=ro", uri=True)
    try:
        return db.execute("SELECT length(stored_app_s_key), as_kek_label, as_app_s_key "
                          "FROM sessions WHERE dev_eui = ? AND session_key_id = ?",
                          (bytes.fromhex(dev_eui), bytes.fromhex(session_key_id))).fetchone()
    finally:
        db.close()


def result_of(answer: dict):
    return answer.get("Result", {}).get("ResultCode")


# ---------------------------------------------------------------- successes

def joins_of_every_version(checks, env):
    ns = ns_client(env)
    asrv = h.Client(env, env.certs[AS_ID])
    for mac in ("1.0.2", "1.0.4", "1.1"):
        d = device(env, mac)
        for n in range(2):
            nonce = d.nonce()
            req = h.join_req(d, nonce)
            status, ans = ns.post(req)
            problems = [] if status == 200 else [f"HTTP {status}"]
            problems += h.check_join_ans(env, d, nonce, req, ans)
            checks.record(f"{mac} join #{n + 1}: the NS and the device accept the answer",
                          not problems, "; ".join(problems))
            if problems:
                continue
            # The AS fetches the same AppSKey through AppSKeyReq.
            areq = h.header("AppSKeyReq", AS_ID, JOIN_EUI)
            areq.update({"DevEUI": d.eui(), "SessionKeyID": ans["SessionKeyID"]})
            st, aans = asrv.post(areq)
            ok = st == 200 and result_of(aans) == "Success"
            got = None
            if ok:
                env_ = aans.get("AppSKey", {})
                ok = env_.get("KEKLabel") == "as-kek"
                got = h.ref.unwrap(env.keks["as-kek"], bytes.fromhex(env_.get("AESKey", "")))
                ok = ok and got == ans["_app_s_key"] and aans.get("SessionKeyID") == ans["SessionKeyID"]
            checks.record(f"{mac} join #{n + 1}: AppSKeyReq gives the AS the same AppSKey", ok,
                          h.shown(aans, 300))
            # Kept as the JoinAns delivered it (no second wrap under the storage key).
            kept = session_row(env, d.eui(), ans["SessionKeyID"])
            delivered = bytes.fromhex(ans.get("AppSKey", {}).get("AESKey", ""))
            checks.record(f"{mac} join #{n + 1}: the session keeps the AS's envelope, nothing "
                          "under the storage key",
                          kept == (0, "as-kek", delivered) and len(delivered) == 24, str(kept))
        # JoinNonces increase per device.
    ns.close()
    asrv.close()


def join_nonce_increases(checks, env):
    ns = ns_client(env)
    d = device(env, "1.0.3", as_id=None)
    seen = []
    for _ in range(3):
        nonce = d.nonce()
        req = h.join_req(d, nonce)
        _, ans = ns.post(req)
        problems = h.check_join_ans(env, d, nonce, req, ans, as_kek=None)
        if problems:
            checks.record("JoinNonce: joins succeed", False, "; ".join(problems))
            return
        seen.append(ans["_join_nonce"])
    checks.record("JoinNonce: a per-device counter, one up per join",
                  seen == list(range(seen[0], seen[0] + 3)), str(seen))
    ns.close()


def home_ns(checks, env):
    ns = ns_client(env, NS_C)  # any authenticated NS may ask
    d = device(env, "1.0.2", home=NS_A)
    req = h.header("HomeNSReq", NS_C, JOIN_EUI)
    req["DevEUI"] = d.eui()
    st, ans = ns.post(req)
    checks.record("HomeNSReq 1.0 answers the home NetID",
                  st == 200 and result_of(ans) == "Success" and ans.get("HNetID") == NS_A
                  and ans.get("MessageType") == "HomeNSAns" and "HNSID" not in ans,
                  h.shown(ans, 300))
    d11 = device(env, "1.1", hnsid="00000000000000AB")
    req = h.header("HomeNSReq", NS_C, JOIN_EUI, "1.1", sender_ns_id="0A0B0C0D0E0F0001")
    req["DevEUI"] = d11.eui()
    st, ans = ns.post(req)
    checks.record("HomeNSReq 1.1 answers HNetID and HNSID, echoes ReceiverNSID",
                  st == 200 and result_of(ans) == "Success" and ans.get("HNetID") == NS_A
                  and ans.get("HNSID") == "00000000000000AB"
                  and ans.get("ReceiverNSID") == "0A0B0C0D0E0F0001", h.shown(ans, 300))
    req = h.header("HomeNSReq", NS_C, JOIN_EUI)
    req["DevEUI"] = os.urandom(8).hex()
    st, ans = ns.post(req)
    checks.record("HomeNSReq for an unknown device: UnknownDevEUI",
                  result_of(ans) == "UnknownDevEUI", h.shown(ans, 300))
    ns.close()


def roaming_partner(checks, env):
    """NetID B may activate the device that lists it; its keys come under B's KEK."""
    d = device(env, "1.0.2", allowed=(NS_B,), as_id=None)
    ns = ns_client(env, NS_B)
    nonce = d.nonce()
    req = h.join_req(d, nonce, sender=NS_B)
    _, ans = ns.post(req)
    problems = h.check_join_ans(env, d, nonce, req, ans, ns_kek="ns-b-kek", as_kek=None)
    checks.record("an allowed NetID activates the device, keys under its own KEK",
                  not problems, "; ".join(problems))
    ns.close()


def hex_spellings(checks, env):
    """Lower case and 0x-prefixed hex are accepted; answers are upper case."""
    d = device(env, "1.0.2", as_id=None)
    ns = ns_client(env)
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    original = dict(req)
    req["DevEUI"] = "0x" + d.eui().lower()
    req["PHYPayload"] = "0X" + req["PHYPayload"].lower()
    req["SenderID"] = NS_A.lower()
    _, ans = ns.post(req)
    problems = h.check_join_ans(env, d, nonce, dict(original, TransactionID=req["TransactionID"]),
                                ans, as_kek=None)
    upper = all(v == v.upper() for k, v in ans.items()
                if k in ("PHYPayload", "SessionKeyID", "SenderID") and isinstance(v, str))
    checks.record("hex in any case, with 0x, is accepted; the answer is upper case",
                  not problems and upper, "; ".join(problems) or h.shown(ans, 200))
    ns.close()


def checks_can_fail(checks, env):
    """The checker above must reject wrong answers: a right answer, then deliberately
    damaged copies of it."""
    d = device(env, "1.1")
    ns = ns_client(env)
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    _, ans = ns.post(req)
    good = {k: v for k, v in ans.items() if not k.startswith("_")}
    checks.record("checker: the undamaged answer passes",
                  not h.check_join_ans(env, d, nonce, req, dict(good)))

    def flip(hexstr: str) -> str:
        b = bytearray(bytes.fromhex(hexstr))
        b[len(b) // 2] ^= 0x01
        return b.hex().upper()
    damaged = {
        "join-accept byte flipped": dict(good, PHYPayload=flip(good["PHYPayload"])),
        "wrapped key byte flipped": dict(good, SNwkSIntKey=dict(
            good["SNwkSIntKey"], AESKey=flip(good["SNwkSIntKey"]["AESKey"]))),
        "keys swapped": dict(good, SNwkSIntKey=good["NwkSEncKey"], NwkSEncKey=good["SNwkSIntKey"]),
        "TransactionID changed": dict(good, TransactionID=good["TransactionID"] + 1),
        "ReceiverToken dropped": {k: v for k, v in good.items() if k != "ReceiverToken"},
        "AppSKey missing": {k: v for k, v in good.items() if k != "AppSKey"},
    }
    for name, answer in damaged.items():
        checks.record(f"checker: rejects an answer with {name}",
                      bool(h.check_join_ans(env, d, nonce, req, answer)))
    ns.close()


ALL = [
    ("joins of 1.0.2, 1.0.4 and 1.1, with AppSKeyReq", joins_of_every_version),
    ("JoinNonce counter", join_nonce_increases),
    ("HomeNSReq", home_ns),
    ("roaming partner", roaming_partner),
    ("hex spellings", hex_spellings),
    ("the checks can fail", checks_can_fail),
]

from negatives import NEGATIVE  # noqa: E402
from operations import OPERATIONS  # noqa: E402

ALL += NEGATIVE + OPERATIONS
