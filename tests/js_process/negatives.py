"""The negative matrix: each bad request gets its Backend Interfaces answer, and the
registry is exactly as it was before it."""

import json
import os
import socket
import ssl

import harness as h
from harness import AS_ID, AS_OTHER, JOIN_EUI, NS_A, NS_B, NS_C


def result_of(answer: dict):
    return answer.get("Result", {}).get("ResultCode")


def refused(checks, env, name, client, message, want_result, want_status=200, raw=None,
            version_names=None):
    """Sends `message` (or `raw` bytes); checks the HTTP status, the ResultCode, that the
    answer echoes what it can, and that the registry did not change."""
    before = env.snapshot()
    if raw is not None:
        status, data = client.post_raw(raw)
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {"_raw": data[:200].decode(errors="replace")}
    else:
        status, answer = client.post(message)
    after = env.snapshot()
    ok = status == want_status
    detail = f"HTTP {status}, {json.dumps(answer)[:300]}"
    if want_result is not None:
        ok = ok and result_of(answer) == want_result
        if message is not None and "TransactionID" in message and isinstance(
                message.get("TransactionID"), int):
            ok = ok and answer.get("TransactionID") == message["TransactionID"]
    checks.record(f"{name}: {want_result or want_status}", ok, detail)
    checks.record(f"{name}: registry unchanged", before == after,
                  "the registry changed" if before != after else "")
    return answer


def certificates(checks, env):
    d = h.Device("1.0.2")
    env.add_device(d)
    req = h.join_req(d, d.nonce())
    refused(checks, env, "no client certificate", h.Client(env, None), req, "UnknownSender")
    refused(checks, env, "a certificate of another NetID's CA", h.Client(env, env.certs[NS_B]),
            h.join_req(d, d.nonce()), "UnknownSender")
    refused(checks, env, "SenderID not matching the certificate",
            h.Client(env, env.certs[NS_A]), h.join_req(d, d.nonce(), sender=NS_B),
            "UnknownSender")
    refused(checks, env, "an AS certificate for a Network Server's message",
            h.Client(env, env.certs[AS_ID]), h.join_req(d, d.nonce()), "UnknownSender")
    refused(checks, env, "a certificate from a CA in no map entry",
            h.Client(env, env.certs["expired"]), h.join_req(d, d.nonce()), "UnknownSender")


def devices(checks, env):
    ns = h.Client(env, env.certs[NS_A])
    unknown = h.Device("1.0.2")  # never provisioned
    refused(checks, env, "unknown DevEUI", ns, h.join_req(unknown, unknown.nonce()),
            "UnknownDevEUI")
    d = h.Device("1.0.2", as_id=None)
    env.add_device(d)
    wrong_join_eui = h.Device("1.0.2")
    wrong_join_eui.dev_eui = d.dev_eui
    wrong_join_eui.app_key = d.app_key
    wrong_join_eui.join_eui = bytes.fromhex("70B3D57ED0000001")
    refused(checks, env, "wrong JoinEUI", ns, h.join_req(wrong_join_eui, 7), "UnknownDevEUI")
    refused(checks, env, "wrong MIC", ns,
            h.join_req(d, 9, phy=d.join_request(9, key=os.urandom(16))), "MICFailed")
    refused(checks, env, "a NetID the device does not allow",
            h.Client(env, env.certs[NS_C]), h.join_req(d, d.nonce(), sender=NS_C),
            "ActivationDisallowed")
    refused(checks, env, "PHYPayload DevEUI differs from DevEUI", ns,
            dict(h.join_req(d, d.nonce()), DevEUI=os.urandom(8).hex()), "MalformedRequest")
    refused(checks, env, "1.1 MACVersion for a 1.0.2 device", ns,
            dict(h.join_req(d, d.nonce()), MACVersion="1.1"), "JoinReqFailed")
    ns.close()


def replays(checks, env):
    ns = h.Client(env, env.certs[NS_A])
    for mac, version_result in (("1.0.2", "JoinReqFailed"), ("1.0.4", "JoinReqFailed"),
                                ("1.1", "FrameReplayed")):
        d = env.add_device(h.Device(mac, as_id=None))
        nonce = d.nonce()
        req = h.join_req(d, nonce)
        _, ans = ns.post(req)
        ok = result_of(ans) == "Success"
        checks.record(f"{mac}: first join with DevNonce {nonce}", ok, h.shown(ans, 200))
        refused(checks, env, f"{mac}: replayed DevNonce", ns, h.join_req(d, nonce),
                version_result)
        if d.counter():
            higher = d.nonce() + 5
            _, ans = ns.post(h.join_req(d, higher))
            checks.record(f"{mac}: a DevNonce that jumps ahead is accepted",
                          result_of(ans) == "Success", h.shown(ans, 200))
            refused(checks, env, f"{mac}: DevNonce not increasing", ns,
                    h.join_req(d, higher - 2), version_result)
    ns.close()


def app_s_key_refusals(checks, env):
    d = env.add_device(h.Device("1.0.2"))
    ns = h.Client(env, env.certs[NS_A])
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    _, ans = ns.post(req)
    sid = ans.get("SessionKeyID", "00")
    other = h.Client(env, env.certs[AS_OTHER])
    areq = h.header("AppSKeyReq", AS_OTHER, JOIN_EUI)
    areq.update({"DevEUI": d.eui(), "SessionKeyID": sid})
    a1 = refused(checks, env, "AppSKeyReq from the wrong AS", other, areq, "UnknownDevEUI")
    checks.record("AppSKeyReq from the wrong AS: no key in the answer",
                  "AppSKey" not in a1, h.shown(a1, 200))
    mine = h.Client(env, env.certs[AS_ID])
    areq = h.header("AppSKeyReq", AS_ID, JOIN_EUI)
    areq.update({"DevEUI": d.eui(), "SessionKeyID": os.urandom(16).hex()})
    refused(checks, env, "AppSKeyReq for an unknown SessionKeyID", mine, areq, "UnknownDevEUI")
    areq = h.header("AppSKeyReq", AS_ID, JOIN_EUI)
    areq.update({"DevEUI": os.urandom(8).hex(), "SessionKeyID": sid})
    refused(checks, env, "AppSKeyReq for an unknown DevEUI", mine, areq, "UnknownDevEUI")
    for c in (ns, other, mine):
        c.close()


def malformed(checks, env):
    ns = h.Client(env, env.certs[NS_A])
    d = env.add_device(h.Device("1.0.2"))
    good = h.join_req(d, d.nonce())
    refused(checks, env, "a body that is not JSON", ns, None, None, 400, raw=b"{not json")
    refused(checks, env, "JSON that is not an object", ns, None, None, 400, raw=b"[1,2,3]")
    refused(checks, env, "TransactionID a string", ns, dict(good, TransactionID="12"),
            "MalformedRequest")
    refused(checks, env, "RxDelay a string", ns, dict(good, RxDelay="1"), "MalformedRequest")
    refused(checks, env, "DevEUI a number", ns, dict(good, DevEUI=12345), "MalformedRequest")
    refused(checks, env, "DevEUI of 7 bytes", ns, dict(good, DevEUI=d.eui()[:14]),
            "MalformedRequest")
    for field in ("PHYPayload", "DevEUI", "DevAddr", "MACVersion", "DLSettings", "RxDelay",
                  "SenderID", "TransactionID"):
        m = dict(good)
        del m[field]
        refused(checks, env, f"missing {field}", ns, m, "MalformedRequest")
    refused(checks, env, "unknown MessageType", ns, dict(good, MessageType="PRStartReq"),
            "MalformedRequest")
    refused(checks, env, "unknown ProtocolVersion", ns, dict(good, ProtocolVersion="2.0"),
            "InvalidProtocolVersion")
    bad11 = h.join_req(d, d.nonce(), version="1.1")
    del bad11["SenderNSID"]
    refused(checks, env, "1.1 JoinReq without SenderNSID", ns, bad11, "MalformedMessage")
    refused(checks, env, "1.1 wrong type: MalformedMessage", ns,
            dict(h.join_req(d, d.nonce(), version="1.1"), RxDelay=[1]), "MalformedMessage")
    refused(checks, env, "a PHYPayload that is not a join-request", ns,
            dict(good, PHYPayload="40" + "00" * 22), "MalformedRequest")
    big = json.dumps(dict(good, Padding="A" * 70000)).encode()
    refused(checks, env, "a body over the size cap", ns, None, None, 413, raw=big)
    ns.close()
    # After all that the server still serves, on a fresh connection.
    ns = h.Client(env, env.certs[NS_A])
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    _, ans = ns.post(req)
    checks.record("still serving after the malformed requests",
                  not h.check_join_ans(env, d, nonce, req, ans), h.shown(ans, 200))
    ns.close()


def slow_client(checks, env):
    """A client that sends half a request and stalls is cut off; others are served."""
    ctx = ssl.create_default_context(cafile=env.server_ca)
    ctx.load_cert_chain(*env.certs[NS_A])
    raw = socket.create_connection((env.host, env.port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Proto")
    d = env.add_device(h.Device("1.0.2", as_id=None))
    ns = h.Client(env, env.certs[NS_A])
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    _, ans = ns.post(req)
    checks.record("others are served while a client stalls",
                  not h.check_join_ans(env, d, nonce, req, ans, as_kek=None),
                  h.shown(ans, 200))
    s.settimeout(20)
    try:
        data = s.recv(4096)
        closed = True if not data or b"HTTP/1.1" in data else False
    except (socket.timeout, TimeoutError):
        closed = False
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
    checks.record("a stalled request is cut off by the request timeout", closed)
    s.close()
    ns.close()


NEGATIVE = [
    ("client certificates", certificates),
    ("devices, JoinEUI, MIC, NetID", devices),
    ("DevNonce replays", replays),
    ("AppSKeyReq refusals", app_s_key_refusals),
    ("malformed messages", malformed),
    ("slow client", slow_client),
]
