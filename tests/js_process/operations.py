"""Concurrency, the appliance going away, operability (metrics, health, logs), the CA map
changing under a running server, and Identity-Server mode."""

import json
import os
import re
import sqlite3
import threading
import time

import harness as h
from harness import AS_ID, JOIN_EUI, NS_A


def result_of(answer: dict):
    return answer.get("Result", {}).get("ResultCode")


def parallel(n, fn):
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # recorded as that thread's answer
            out[i] = {"_error": repr(e)}
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def concurrency(checks, env):
    # The same join-request sent 16 times at once: one success, one JoinNonce used.
    for mac in ("1.0.2", "1.1"):
        d = env.add_device(h.Device(mac, as_id=None))
        nonce = d.nonce()
        req = h.join_req(d, nonce)

        def same(_i):
            c = h.Client(env, env.certs[NS_A])
            try:
                return c.post(dict(req))[1]
            finally:
                c.close()
        answers = parallel(16, same)
        wins = [a for a in answers if result_of(a) == "Success"]
        checks.record(f"{mac}: 16 simultaneous copies of one join-request, exactly one success",
                      len(wins) == 1, str([result_of(a) or a.get("_error") for a in answers]))
        # Distinct DevNonces at once: every success has its own JoinNonce.
        nonces = [d.nonce() for _ in range(12)]

        def distinct(i):
            c = h.Client(env, env.certs[NS_A])
            try:
                r = h.join_req(d, nonces[i])
                a = c.post(r)[1]
                if result_of(a) == "Success":
                    problems = h.check_join_ans(env, d, nonces[i], r, a, as_kek=None)
                    a["_problems"] = problems
                return a
            finally:
                c.close()
        answers = parallel(12, distinct)
        wins = [a for a in answers if result_of(a) == "Success"]
        join_nonces = [a["_join_nonce"] for a in wins if "_join_nonce" in a]
        bad = [p for a in wins for p in a.get("_problems", [])]
        checks.record(f"{mac}: 12 simultaneous joins with distinct DevNonces get distinct "
                      "JoinNonces, each answer right",
                      len(wins) >= 1 and len(set(join_nonces)) == len(wins) and not bad,
                      f"{len(wins)} successes, JoinNonces {sorted(join_nonces)}, {bad[:2]}")
        if not d.counter():
            checks.record(f"{mac}: random DevNonces all succeed when joined at once",
                          len(wins) == 12, str([result_of(a) for a in answers]))


def appliance_down(checks, env):
    d = env.add_device(h.Device("1.0.2", as_id=None))
    ns = h.Client(env, env.certs[NS_A])
    env.cs.stop()
    nonce = d.nonce()
    req = h.join_req(d, nonce)
    before = env.snapshot()
    t0 = time.monotonic()
    status, ans = ns.post(req)
    took = time.monotonic() - t0
    after = env.snapshot()
    checks.record("appliance down: JoinReqFailed, a clear description",
                  status == 200 and result_of(ans) == "JoinReqFailed"
                  and "appliance" in ans.get("Result", {}).get("Description", ""),
                  h.shown(ans, 300))
    checks.record("appliance down: answered within the deadline", took < 10, f"{took:.1f} s")
    checks.record("appliance down: no nonce consumed, registry unchanged", before == after)
    st, body = ns.get("/readyz")
    checks.record("appliance down: /readyz says not ready", st == 503, body[:200])
    env.start_cs()
    # The same DevNonce works once the appliance is back: nothing was consumed.
    ok = False
    for _ in range(20):
        again = h.join_req(d, nonce)
        status, ans = ns.post(again)
        if result_of(ans) == "Success":
            ok = not h.check_join_ans(env, d, nonce, again, ans, as_kek=None)
            break
        time.sleep(0.5)
    checks.record("appliance back: the same DevNonce joins", ok, h.shown(ans, 300))
    ns.close()


def operability(checks, env):
    c = h.Client(env, env.certs[NS_A])
    st, body = c.get("/healthz")
    checks.record("/healthz 200", st == 200, body[:100])
    st, body = c.get("/readyz")
    checks.record("/readyz 200 with registry and appliance", st == 200, body[:200])
    st, body = c.get("/metrics")
    checks.record("/metrics counts JoinReq successes by sender",
                  st == 200 and re.search(
                      r'lorakeep_js_requests_total\{message_type="JoinReq",sender="000013",'
                      r'result="Success"\} [1-9]', body) is not None, body[:300])
    checks.record("/metrics has latency histograms",
                  'lorakeep_js_request_duration_seconds_bucket{message_type="JoinReq",le="+Inf"}'
                  in body)
    checks.record("/metrics has the appliance's statistics",
                  "lorakeep_cs_up 1" in body and "lorakeep_cs_operations_total" in body,
                  body[-300:])
    st, _ = c.get("/etc/passwd")
    checks.record("no file serving: other paths are 404", st == 404, str(st))
    c.close()
    # Logs: JSON lines with TransactionID, SenderID and DevEUI, and no key material.
    with open(env.js.stderr_path, "rb") as f:
        text = f.read().decode(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    req_lines = [x for x in lines if x.get("event") == "request" and x.get("result") == "Success"]
    checks.record("logs: JSON request lines with transaction_id, sender_id, dev_eui",
                  req_lines and all("transaction_id" in x and "sender_id" in x
                                    for x in req_lines), str(req_lines[:1]))
    secrets = [k.hex() for k in env.keks.values()]
    for dev in list(_all_devices(env)):
        secrets += [dev.app_key.hex()] + ([dev.nwk_key.hex()] if dev.nwk_key else [])
    lower = text.lower()
    leaked = [s for s in secrets if s in lower]
    checks.record("logs: no KEK or root key appears", not leaked, f"{len(leaked)} found")


def _all_devices(env):
    import scenarios
    return scenarios._devices.values()


def ca_map_reload(checks, env):
    """A new peer added with lorakeepctl while lorakeep-js runs is served within seconds."""
    ca = h.pki.Ca(os.path.join(env.work, "pki"), "late")
    cert = ca.issue(os.path.join(env.work, "pki"), "client-late")
    late = "00ABCD"
    d = env.add_device(h.Device("1.0.2", as_id=None, allowed=(late,)))
    c = h.Client(env, cert)
    _, ans = c.post(h.join_req(d, d.nonce(), sender=late))
    checks.record("a sender not yet in the CA map: UnknownSender",
                  result_of(ans) == "UnknownSender", h.shown(ans, 200))
    env.ctl("peer", "add", "--net-id", late, "--ca", ca.path, "--kek-label", "ns-b-kek")
    ok = False
    for _ in range(40):
        time.sleep(0.25)
        nonce = d.nonce()
        req = h.join_req(d, nonce, sender=late)
        _, ans = c.post(req)
        if result_of(ans) == "Success":
            ok = not h.check_join_ans(env, d, nonce, req, ans, ns_kek="ns-b-kek", as_kek=None)
            break
    checks.record("the peer added at run time is served within 10 s", ok, h.shown(ans, 200))
    env.ctl("peer", "remove", "--net-id", late)
    gone = False
    for _ in range(40):
        time.sleep(0.25)
        _, ans = c.post(h.join_req(d, d.nonce(), sender=late))
        if result_of(ans) == "UnknownSender":
            gone = True
            break
    checks.record("the peer removed at run time is refused within 10 s", gone)
    c.close()


def rejoin(checks, env):
    d = env.add_device(h.Device("1.1", as_id=None))
    ns = h.Client(env, env.certs[NS_A])
    nonce = d.nonce()
    _, ans = ns.post(h.join_req(d, nonce))
    js_int = h.ref.derive_js_keys(d.nwk_key, d.dev_eui)["JSIntKey"]
    for count, want in ((1, "Success"), (2, "Success"), (2, "FrameReplayed"),
                        (1, "FrameReplayed")):
        phy = h.ref.rejoin_request(1, js_int, d.dev_eui, count, join_eui=d.join_eui)
        m = h.header("RejoinReq", NS_A, JOIN_EUI, "1.1", "0102030405060708")
        m.update({"MACVersion": "1.1", "PHYPayload": phy.hex(), "DevEUI": d.eui(),
                  "DevAddr": "01020304", "DLSettings": "80", "RxDelay": 1})
        before = env.snapshot()
        _, ans = ns.post(m)
        ok = result_of(ans) == want
        if ok and want == "Success":
            opened = h.ref.device_open_join_accept(
                "1.1", d.app_key, d.nwk_key, bytes.fromhex(ans["PHYPayload"]), d.join_eui,
                h.ref.rjcount_display(count), join_req_type=1, dev_eui=d.dev_eui)
            ok = opened["mic_ok"] and ans.get("MessageType") == "RejoinAns"
        if want != "Success":
            ok = ok and before == env.snapshot()
        checks.record(f"rejoin type 1 with RJcount1 {count}: {want}", ok, h.shown(ans, 200))
    ns.close()


class OtherJoinServer:
    """A second lorakeep-js on another configuration (`text`), for a `with` block; the
    environment's own server is in place again afterwards."""

    def __init__(self, env, name: str, text: str):
        self.env, self.main = env, env.js
        self.path = os.path.join(env.work, name)
        with open(self.path, "w") as f:
            f.write(text)

    def __enter__(self):
        self.env.start_js(self.path)
        return self

    def __exit__(self, *exc):
        if self.env.js is not self.main and self.env.js.proc.poll() is None:
            self.env.js.stop()
        self.env.js = self.main
        m = re.match(r"https://([^:/]+):(\d+)/", self.main.address)
        self.env.host, self.env.port = m.group(1), int(m.group(2))
        return False


def keep_app_s_key_when_not_delivered(checks, env):
    """join_server.keep_app_s_key: when_not_delivered — the AppSKey is kept under the storage
    key only when the JoinAns does not carry it to the AS."""
    with open(env.config) as f:
        text = f.read()
    text = text.replace("  lifetime_s: 3600\n",
                        "  lifetime_s: 3600\n  keep_app_s_key: when_not_delivered\n", 1)
    with_as = env.add_device(h.Device("1.1"))             # its AS has a KEK: key in the JoinAns
    without_as = env.add_device(h.Device("1.0.2", as_id=None))  # no AS: kept for AppSKeyReq
    with OtherJoinServer(env, "keep-when-not-delivered.yml", text):
        ns = h.Client(env, env.certs[NS_A])
        answers = {}
        for d in (with_as, without_as):
            nonce = d.nonce()
            req = h.join_req(d, nonce)
            _, ans = ns.post(req)
            problems = h.check_join_ans(env, d, nonce, req, ans,
                                        as_kek="as-kek" if d.as_id else None)
            checks.record(f"keep_app_s_key when_not_delivered: {d.mac} join succeeds",
                          not problems, "; ".join(problems))
            answers[d.eui()] = ans
        ns.close()
        stored = {}
        db = sqlite3.connect(f"file:{env.registry}?mode=ro", uri=True)
        try:
            for d in (with_as, without_as):
                row = db.execute("SELECT length(stored_app_s_key) FROM sessions WHERE "
                                 "dev_eui = ? ORDER BY seq DESC LIMIT 1",
                                 (bytes.fromhex(d.eui()),)).fetchone()
                stored[d.eui()] = row[0] if row else None
        finally:
            db.close()
        checks.record("keep_app_s_key when_not_delivered: nothing kept when the JoinAns "
                      "carried the AppSKey", stored[with_as.eui()] == 0, str(stored))
        checks.record("keep_app_s_key when_not_delivered: kept (24 bytes) when it did not",
                      stored[without_as.eui()] == 24, str(stored))
        asrv = h.Client(env, env.certs[AS_ID])
        areq = h.header("AppSKeyReq", AS_ID, JOIN_EUI)
        areq.update({"DevEUI": with_as.eui(),
                     "SessionKeyID": answers[with_as.eui()].get("SessionKeyID", "00")})
        _, aans = asrv.post(areq)
        checks.record("keep_app_s_key when_not_delivered: AppSKeyReq for a key that went in "
                      "the JoinAns is UnknownDevEUI, with no key",
                      result_of(aans) == "UnknownDevEUI" and "AppSKey" not in aans,
                      h.shown(aans, 200))
        asrv.close()


def app_s_key_req_after_kek_change(checks, env):
    """A kept envelope is returned only while the AS still has the KEK it is under. After
    the AS's KEK changes, AppSKeyReq gets the same AppSKey under the new KEK, derived again
    in the token from the session's join- or rejoin-request, with no word of the old KEK;
    the session then keeps that envelope, which answers the next AppSKeyReq."""
    ns = h.Client(env, env.certs[NS_A])
    sessions = []  # (what, DevEUI, SessionKeyID, the AppSKey the reference derives)
    for mac, dl in (("1.0.4", 0x00), ("1.1", 0x80), ("1.1", 0x00)):
        d = env.add_device(h.Device(mac))
        nonce = d.nonce()
        req = h.join_req(d, nonce, dl_settings=dl)
        _, ans = ns.post(req)
        problems = h.check_join_ans(env, d, nonce, req, ans)
        what = f"{mac} join, DLSettings {dl:02x}"
        checks.record(f"KEK change: the {what} succeeds", not problems, "; ".join(problems))
        sessions.append((what, d, ans.get("SessionKeyID", "00"), ans.get("_app_s_key")))
    # A rejoin type 1 of the last 1.1 device's first join.
    d = sessions[1][1]
    js_int = h.ref.derive_js_keys(d.nwk_key, d.dev_eui)["JSIntKey"]
    phy = h.ref.rejoin_request(1, js_int, d.dev_eui, 1, join_eui=d.join_eui)
    m = h.header("RejoinReq", NS_A, JOIN_EUI, "1.1", "0102030405060708")
    m.update({"MACVersion": "1.1", "PHYPayload": phy.hex(), "DevEUI": d.eui(),
              "DevAddr": "01020304", "DLSettings": "80", "RxDelay": 1})
    _, ans = ns.post(m)
    ns.close()
    opened = h.ref.device_open_join_accept(
        "1.1", d.app_key, d.nwk_key, bytes.fromhex(ans.get("PHYPayload", "00" * 17)), d.join_eui,
        h.ref.rjcount_display(1), join_req_type=1, dev_eui=d.dev_eui)
    want = None
    if opened["mic_ok"]:
        join_nonce = opened["plaintext"][1:4][::-1]
        want = h.ref.derive_session_keys_11(d.nwk_key, d.app_key, join_nonce, d.join_eui,
                                            h.ref.rjcount_display(1))["AppSKey"]
    checks.record("KEK change: the rejoin succeeds",
                  result_of(ans) == "Success" and want is not None, h.shown(ans, 200))
    sessions.append(("1.1 rejoin type 1", d, ans.get("SessionKeyID", "00"), want))

    def ask(device, session_key_id):
        areq = h.header("AppSKeyReq", AS_ID, JOIN_EUI)
        areq.update({"DevEUI": device.eui(), "SessionKeyID": session_key_id})
        asrv = h.Client(env, env.certs[AS_ID])
        try:
            return asrv.post(areq)[1]
        finally:
            asrv.close()

    ca = env.certs["ca:" + AS_ID]
    def kept_label(device, sid):
        shown = json.loads(env.ctl("device", "show", "--dev-eui", device.eui(), json_out=True)
                           .stdout)
        for s in shown.get("sessions", []):
            if s.get("session_key_id", "").upper() == sid.upper():
                return s.get("app_s_key_as_kek_label")
        return "no such session"

    env.ctl("peer", "add", "--as-id", AS_ID, "--ca", ca, "--kek-label", "as-other-kek")
    try:
        for what, device, sid, app_s_key in sessions:
            checks.record(f"KEK change: the {what}'s session keeps the JoinAns's envelope",
                          kept_label(device, sid) == "as-kek", str(kept_label(device, sid)))
            for attempt in ("", " again, from the envelope kept the first time"):
                got = ask(device, sid)
                envelope = got.get("AppSKey", {})
                plain = h._unwrap(env.keks["as-other-kek"], envelope.get("AESKey", ""))
                checks.record(f"KEK change: AppSKeyReq for the {what} gets the same AppSKey under "
                              f"the new KEK{attempt}, and no word of the old one",
                              result_of(got) == "Success"
                              and envelope.get("KEKLabel") == "as-other-kek"
                              and app_s_key is not None and plain == app_s_key
                              and "as-kek" not in json.dumps(got), h.shown(got, 300))
                label = kept_label(device, sid)
                checks.record(f"KEK change: the {what}'s session now keeps the key under the "
                              "new KEK", label == "as-other-kek", str(label))
    finally:
        env.ctl("peer", "add", "--as-id", AS_ID, "--ca", ca, "--kek-label", "as-kek")
    what, device, sid, app_s_key = sessions[0]
    # An AS now given plaintext keys: the key derived again, in plaintext, and not kept.
    env.ctl("peer", "add", "--as-id", AS_ID, "--ca", ca, "--plaintext-keys")
    try:
        got = ask(device, sid)
        plain = got.get("AppSKey", {})
        checks.record("KEK change: an AS switched to plaintext keys gets the AppSKey in "
                      "plaintext, derived again",
                      result_of(got) == "Success" and "KEKLabel" not in plain
                      and app_s_key is not None
                      and bytes.fromhex(plain.get("AESKey", "")) == app_s_key, h.shown(got, 300))
        label = kept_label(device, sid)
        with open(env.js.stderr_path, errors="replace") as f:
            not_kept = f.read().count('"app_s_key_not_kept"')
        checks.record("KEK change: a plaintext AppSKey is not kept in the session, and not "
                      "tried (no app_s_key_not_kept warning)",
                      label == "as-other-kek" and not_kept == 0, f"{label}, {not_kept} warnings")
    finally:
        env.ctl("peer", "add", "--as-id", AS_ID, "--ca", ca, "--kek-label", "as-kek")
    again = ask(device, sid)
    checks.record("KEK change: with the KEK back, the AppSKey is under it again",
                  result_of(again) == "Success"
                  and again.get("AppSKey", {}).get("KEKLabel") == "as-kek"
                  and h._unwrap(env.keks["as-kek"], again["AppSKey"].get("AESKey", "")) == app_s_key,
                  h.shown(again, 300))


def identity_mode(checks, env):
    """A configuration answering HomeNSReq only, with no appliance."""
    d = env.add_device(h.Device("1.0.2"))
    with open(env.config) as f:
        text = f.read()
    section = text[text.index("join_server:"):]
    section = section[:section.index("  appliance:")] + "\n".join(
        line for line in section[section.index("  lifetime_s"):].splitlines()) + "\n"
    section = section.replace("join_server:\n", "join_server:\n  mode: identity\n", 1)
    with OtherJoinServer(env, "identity.yml", section):
        c = h.Client(env, env.certs[NS_A])
        req = h.header("HomeNSReq", NS_A, JOIN_EUI)
        req["DevEUI"] = d.eui()
        _, ans = c.post(req)
        checks.record("identity mode: HomeNSReq answered",
                      result_of(ans) == "Success" and ans.get("HNetID") == NS_A,
                      h.shown(ans, 200))
        _, ans = c.post(h.join_req(d, d.nonce()))
        checks.record("identity mode: JoinReq refused with a clear description",
                      result_of(ans) == "Other" and "identity" in
                      ans.get("Result", {}).get("Description", ""), h.shown(ans, 200))
        st, _ = c.get("/readyz")
        checks.record("identity mode: ready without an appliance", st == 200)
        c.close()
        status = env.js.stop()
        checks.record("identity mode: stops cleanly on SIGTERM", status == 0, str(status))


def exhausted_join_nonce(checks, env):
    """A device whose JoinNonce counter is at its maximum gets a clear JoinReqFailed."""
    import sqlite3
    d = env.add_device(h.Device("1.0.2", as_id=None))
    db = sqlite3.connect(env.registry)
    with db:
        db.execute("UPDATE nonces SET join_nonce_last = 16777215, generation = generation + 1 "
                   "WHERE dev_eui = ?", (d.dev_eui,))
    db.close()
    ns = h.Client(env, env.certs[NS_A])
    before = env.snapshot()
    _, ans = ns.post(h.join_req(d, d.nonce()))
    desc = ans.get("Result", {}).get("Description", "")
    checks.record("JoinNonce exhausted: JoinReqFailed saying so",
                  result_of(ans) == "JoinReqFailed" and "exhausted" in desc, h.shown(ans))
    checks.record("JoinNonce exhausted: registry unchanged", before == env.snapshot())
    ns.close()


def plaintext_peer(checks, env):
    """A Network Server configured --plaintext-keys gets keys without a KEKLabel; one with
    neither a KEK nor that setting gets no keys at all."""
    d_dir = os.path.join(env.work, "pki")
    ca = h.pki.Ca(d_dir, "plain")
    cert = ca.issue(d_dir, "client-plain")
    plain = "00BEEF"
    env.ctl("peer", "add", "--net-id", plain, "--ca", ca.path, "--plaintext-keys")
    d = env.add_device(h.Device("1.0.4", as_id=None, allowed=(plain,)))
    c = h.Client(env, cert)
    ok = False
    for _ in range(40):  # the CA map is reloaded every second
        nonce = d.nonce()
        req = h.join_req(d, nonce, sender=plain)
        _, ans = c.post(req)
        if result_of(ans) != "UnknownSender":
            break
        time.sleep(0.25)
    env_ = ans.get("NwkSKey", {})
    if result_of(ans) == "Success" and "KEKLabel" not in env_:
        phy = bytes.fromhex(ans["PHYPayload"])
        opened = h.ref.device_open_join_accept(d.mac, d.app_key, None, phy, d.join_eui,
                                               nonce.to_bytes(2, "big"))
        pt = opened["plaintext"]
        want = h.ref.derive_session_keys_10(d.app_key, pt[1:4][::-1], pt[4:7][::-1],
                                            nonce.to_bytes(2, "big"))
        ok = opened["mic_ok"] and bytes.fromhex(env_.get("AESKey", "")) == want["NwkSKey"]
    checks.record("a --plaintext-keys peer gets the NwkSKey in plaintext, equal to the "
                  "reference's", ok, h.shown(ans))
    env.ctl("peer", "add", "--net-id", plain, "--kek-label", "ns-b-kek")
    nonce = d.nonce()
    req = h.join_req(d, nonce, sender=plain)
    _, ans = c.post(req)
    checks.record("the same peer switched to a KEK gets wrapped keys at once",
                  not h.check_join_ans(env, d, nonce, req, ans, ns_kek="ns-b-kek", as_kek=None),
                  h.shown(ans))
    c.close()


def rate_limits(checks, env):
    """Over the per-DevEUI limit: answered Other without touching the appliance."""
    path = os.path.join(env.work, "limited.yml")
    with open(env.config) as f:
        text = f.read()
    text = text.replace("per_dev_eui: {rate: 1000, burst: 1000}",
                        "per_dev_eui: {rate: 0.001, burst: 2}")
    with open(path, "w") as f:
        f.write(text)
    d = env.add_device(h.Device("1.0.2", as_id=None))
    main = env.js
    try:
        env.start_js(path)
        c = h.Client(env, env.certs[NS_A])
        results = [result_of(c.post(h.join_req(d, d.nonce()))[1]) for _ in range(2)]
        st, metrics_before = c.get("/metrics")
        before = env.snapshot()
        _, ans = c.post(h.join_req(d, d.nonce()))
        after = env.snapshot()
        st, metrics_after = c.get("/metrics")

        def joins(text):
            m = re.search(r'lorakeep_cs_operations_total\{operation="join_1_0",result="OK"\} (\d+)',
                          text)
            return int(m.group(1)) if m else -1
        checks.record("rate limit: two joins within the burst succeed",
                      results == ["Success", "Success"], str(results))
        checks.record("rate limit: the third is answered Other, saying why",
                      result_of(ans) == "Other" and "rate limit" in
                      ans.get("Result", {}).get("Description", ""), h.shown(ans))
        checks.record("rate limit: registry unchanged and the appliance not asked",
                      before == after and joins(metrics_before) == joins(metrics_after) >= 0,
                      f"appliance joins {joins(metrics_before)} -> {joins(metrics_after)}")
        c.close()
        env.js.stop()
    finally:
        env.js = main
        m = re.match(r"https://([^:/]+):(\d+)/", main.address)
        env.host, env.port = m.group(1), int(m.group(2))


OPERATIONS = [
    ("AppSKeyReq after the AS's KEK changed", app_s_key_req_after_kek_change),
    ("JoinNonce exhausted", exhausted_join_nonce),
    ("plaintext peer", plaintext_peer),
    ("rate limits", rate_limits),
    ("concurrency", concurrency),
    ("rejoin", rejoin),
    ("CA map reload", ca_map_reload),
    ("appliance down", appliance_down),
    ("identity mode", identity_mode),
    ("keep_app_s_key: when_not_delivered", keep_app_s_key_when_not_delivered),
    ("operability", operability),
]
