"""The parts an end-to-end test of lorakeep-js needs: a token, a PKI, lorakeep-cs and
lorakeep-js as processes, lorakeepctl to provision, a Network/Application Server client
over mTLS, simulated devices, and a snapshot of the registry."""

import http.client
import json
import os
import pwd
import re
import select
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import Checks  # noqa: E402,F401  (shared tally; harness.Checks for callers)

import lorawan_ref as ref
import pki
import test_token

NS_A = "000013"  # home network of most devices
NS_B = "000042"  # a network with its own CA, allowed to activate one device only
NS_C = "00002A"  # a network no device allows
AS_ID = "as.example.com"
AS_OTHER = "as.other.example"
JOIN_EUI = "70B3D57ED0000000"
KEKS = ("ns-a-kek", "ns-b-kek", "as-kek", "as-other-kek")

READY = re.compile(r"^lorakeep-(cs|js) ready on (\S+)")


def write_secret(path: str, data: bytes):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Process:
    """A lorakeep-cs or lorakeep-js process; start() waits for its ready line."""

    def __init__(self, name: str, argv: list, stderr_path: str):
        self.name = name
        self.argv = argv
        self.stderr_path = stderr_path
        self.proc = None
        self.address = None

    def start(self, timeout: float = 90) -> str:
        stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=stderr,
                                     stdin=subprocess.DEVNULL)
        stderr.close()
        end = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it "
                                   f"was ready:\n{self.stderr_tail()}")
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = READY.match(line.decode(errors="replace"))
                if m:
                    self.address = m.group(2)
                    threading.Thread(target=self._drain, daemon=True).start()
                    return self.address
        raise RuntimeError(f"{self.name}: no ready line within {timeout} s")

    def _drain(self):
        try:
            for _ in self.proc.stdout:
                pass
        except (OSError, ValueError):
            pass

    def stop(self, timeout: float = 30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stderr_tail(self, n: int = 30) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(f"  {self.name} | {line}" for line in lines[-n:])


class Device:
    """A simulated end-device whose root keys the test holds."""

    def __init__(self, mac: str, home: str = NS_A, as_id: str = AS_ID, allowed=(),
                 hnsid: str = None):
        self.mac = mac
        self.dev_eui = os.urandom(8)
        self.join_eui = bytes.fromhex(JOIN_EUI)
        self.app_key = os.urandom(16)
        self.nwk_key = os.urandom(16) if mac.startswith("1.1") else None
        self.home = home
        self.as_id = as_id
        self.allowed = list(allowed)
        self.hnsid = hnsid
        self.next_nonce = 1 if self.counter() else None
        self.used = set()

    def counter(self) -> bool:
        return self.mac in ("1.0.4", "1.1", "1.1.0")

    def eui(self) -> str:
        return self.dev_eui.hex().upper()

    def nonce(self) -> int:
        """A fresh DevNonce: the next counter value, or an unused random one."""
        if self.counter():
            n = self.next_nonce
            self.next_nonce += 1
            return n
        while True:
            n = int.from_bytes(os.urandom(2), "big")
            if n not in self.used:
                self.used.add(n)
                return n

    def join_request(self, dev_nonce: int, key: bytes = None) -> bytes:
        root = key or (self.nwk_key if self.nwk_key else self.app_key)
        return ref.join_request(root, self.join_eui, self.dev_eui, dev_nonce.to_bytes(2, "big"))


class Environment:
    def __init__(self, args, work: str):
        self.args = args
        self.work = work
        self.cs = None
        self.js = None
        self.url = None
        self.keks = {}
        self.certs = {}
        self.run_dir = os.path.join(work, "run")
        self.config = os.path.join(work, "lorakeep.yml")
        self.registry = os.path.join(work, "registry.db")

    # ---- set-up ----
    def start(self):
        os.makedirs(self.run_dir)
        write_secret(os.path.join(self.work, "user.pin"), os.urandom(8).hex().encode() + b"\n")
        for label in KEKS:
            key = os.urandom(16)
            self.keks[label] = key
            write_secret(os.path.join(self.work, label + ".hex"), key.hex().encode() + b"\n")
        self.make_token()
        self.make_pki()
        self.write_config()
        self.start_cs()
        self.provision_peers()
        self.start_js()

    def make_token(self):
        keks = {label: os.path.join(self.work, label + ".hex") for label in KEKS}
        self.token = test_token.make(self.args.token_tool, self.args.token,
                                     os.path.join(self.work, "token"),
                                     os.path.join(self.work, "user.pin"), keks=keks)
        # lorakeep-cs runs as root in the test and drops to `nobody`: the token and its run
        # directory become that user's.
        pw = pwd.getpwnam("nobody")
        os.chmod(self.work, 0o755)
        self.token.hand_to("nobody")
        for root, _, files in os.walk(self.run_dir):
            os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(os.path.join(self.work, "user.pin"), pw.pw_uid, pw.pw_gid)

    def make_pki(self):
        d = os.path.join(self.work, "pki")
        os.makedirs(d)
        server_ca = pki.Ca(d, "server")
        self.server_ca = server_ca.path
        self.certs["server"] = server_ca.issue(d, "join-server", server=True)
        for sender in (NS_A, NS_B, NS_C, AS_ID, AS_OTHER):
            ca = pki.Ca(d, sender)
            self.certs[sender] = ca.issue(d, f"client-{sender}")
            self.certs["ca:" + sender] = ca.path
        # A certificate from NS A's CA that is no longer valid.
        ca_a = pki.Ca(d, "expired-issuer")
        self.certs["expired"] = ca_a.issue(d, "client-expired", days=1, not_before_days=-5)
        self.certs["ca:expired-issuer"] = ca_a.path

    def write_config(self):
        pkcs11 = self.token.pkcs11_yaml(os.path.join(self.work, "user.pin"))
        lines = ["appliance:", "  pkcs11:"] + pkcs11 + [
            f"  listen: unix:{os.path.join(self.run_dir, 'cs.sock')}",
            "  workers: 2",
            "  sessions_per_worker: 1",
            f"  audit_log: {os.path.join(self.run_dir, 'audit.log')}",
            "  user: nobody",
            "join_server:",
            "  listen: 127.0.0.1:0",
            "  tls:",
            f"    certificate: {self.certs['server'][0]}",
            f"    private_key: {self.certs['server'][1]}",
            "  sender_ca_map: config.yml",
            "  reload_interval_s: 1",
            "  registry:",
            f"    sqlite: {self.registry}",
            "    dev_nonce_history: 16",
            "    sessions_kept: 3",
            "  appliance:",
            f"    endpoints: [\"unix:{os.path.join(self.run_dir, 'cs.sock')}\"]",
            "    deadline_ms: 3000",
            "  lifetime_s: 3600",
            "  request_timeout_ms: 3000",
            "  rate_limits:",
            "    per_sender: {rate: 100000, burst: 100000}",
            "    per_dev_eui: {rate: 1000, burst: 1000}",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.work, "config.yml"), "w") as f:
            f.write("{}\n")

    def start_cs(self):
        self.cs = Process("lorakeep-cs", [self.args.cs, "--config", self.config],
                          os.path.join(self.work, "cs-stderr.txt"))
        self.cs.start()

    def start_js(self, config: str = None):
        self.js = Process("lorakeep-js", [self.args.js, "--config", config or self.config],
                          os.path.join(self.work, "js-stderr.txt"))
        self.url = self.js.start()
        m = re.match(r"https://([^:/]+):(\d+)/", self.url)
        self.host, self.port = m.group(1), int(m.group(2))

    def stop(self):
        for p in (self.js, self.cs):
            if p is not None:
                p.stop()

    def show_logs(self):
        for p in (self.cs, self.js):
            if p is not None:
                print(p.stderr_tail())

    # ---- lorakeepctl ----
    def ctl(self, *argv, check=True, json_out=False, timeout=120):
        cmd = [self.args.ctl, "--config", self.config] + [str(a) for a in argv]
        if json_out:
            cmd.append("--json")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"lorakeepctl {' '.join(map(str, argv))} exited with "
                               f"{p.returncode}: {p.stderr.strip()} {p.stdout.strip()}")
        return p

    def provision_peers(self):
        self.ctl("peer", "add", "--net-id", NS_A, "--ca", self.certs["ca:" + NS_A],
                 "--kek-label", "ns-a-kek")
        self.ctl("peer", "add", "--net-id", NS_B, "--ca", self.certs["ca:" + NS_B],
                 "--kek-label", "ns-b-kek")
        self.ctl("peer", "add", "--net-id", NS_C, "--ca", self.certs["ca:" + NS_C],
                 "--kek-label", "ns-a-kek")
        self.ctl("peer", "add", "--as-id", AS_ID, "--ca", self.certs["ca:" + AS_ID],
                 "--kek-label", "as-kek")
        self.ctl("peer", "add", "--as-id", AS_OTHER, "--ca", self.certs["ca:" + AS_OTHER],
                 "--kek-label", "as-other-kek")

    def add_device(self, device: Device):
        keys = os.path.join(self.work, "keys")
        os.makedirs(keys, exist_ok=True)
        app = os.path.join(keys, device.eui() + ".app")
        write_secret(app, device.app_key.hex().encode() + b"\n")
        argv = ["device", "add", "--dev-eui", device.eui(), "--join-eui", JOIN_EUI,
                "--mac-version", device.mac, "--app-key-file", app,
                "--home-net-id", device.home]
        if device.nwk_key:
            nwk = os.path.join(keys, device.eui() + ".nwk")
            write_secret(nwk, device.nwk_key.hex().encode() + b"\n")
            argv += ["--nwk-key-file", nwk]
        if device.as_id:
            argv += ["--as-id", device.as_id]
        if device.hnsid:
            argv += ["--hnsid", device.hnsid]
        for n in device.allowed:
            argv += ["--allowed-net-id", n]
        self.ctl(*argv)
        return device

    # ---- the registry ----
    def snapshot(self) -> dict:
        """Every row of every table but the audit trail, to show a refusal changed nothing."""
        db = sqlite3.connect(f"file:{self.registry}?mode=ro", uri=True)
        try:
            out = {}
            names = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for name in names:
                if "audit" in name:
                    continue
                out[name] = sorted(repr(r) for r in db.execute(f'SELECT * FROM "{name}"'))
            return out
        finally:
            db.close()


class Client:
    """A Network or Application Server: keep-alive HTTPS with its client certificate."""

    def __init__(self, env: Environment, cert=None, timeout: float = 30):
        self.env = env
        ctx = ssl.create_default_context(cafile=env.server_ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            ctx.load_cert_chain(cert[0], cert[1])
        self.ctx = ctx
        self.timeout = timeout
        self.conn = None

    def post_raw(self, body: bytes, path: str = "/", headers=None):
        """(status, body bytes); a fresh connection when the last one closed."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.env.host, self.env.port,
                                                        context=self.ctx, timeout=self.timeout)
            try:
                h = {"Content-Type": "application/json"}
                h.update(headers or {})
                self.conn.request("POST", path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def post(self, message: dict):
        status, data = self.post_raw(json.dumps(message).encode())
        try:
            return status, json.loads(data)
        except ValueError:
            return status, {"_raw": data.decode(errors="replace")}

    def get(self, path: str):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(self.env.host, self.env.port,
                                                    context=self.ctx, timeout=self.timeout)
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        return r.status, r.read().decode(errors="replace")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


_transaction = [1000]


def shown(answer: dict, n: int = 300) -> str:
    """An answer for a failure message, without the test's own notes (keys among them)."""
    return json.dumps({k: v for k, v in answer.items() if not k.startswith("_")})[:n]


def header(message_type: str, sender: str, receiver: str, version: str = "1.0",
           sender_ns_id: str = None) -> dict:
    _transaction[0] += 1
    h = {"ProtocolVersion": version, "SenderID": sender, "ReceiverID": receiver,
         "TransactionID": _transaction[0], "MessageType": message_type,
         "SenderToken": os.urandom(4).hex()}
    if sender_ns_id:
        h["SenderNSID"] = sender_ns_id
    return h


def join_req(device: Device, dev_nonce: int, sender: str = NS_A, version: str = None,
             phy: bytes = None, dl_settings: int = None, dev_addr: str = "01020304") -> dict:
    is_11 = device.mac.startswith("1.1")
    version = version or ("1.1" if is_11 else "1.0")
    m = header("JoinReq", sender, JOIN_EUI, version,
               "0102030405060708" if version == "1.1" else None)
    if dl_settings is None:
        dl_settings = 0x80 if is_11 else 0x00
    m.update({"MACVersion": device.mac,
              "PHYPayload": (phy or device.join_request(dev_nonce)).hex(),
              "DevEUI": device.eui(), "DevAddr": dev_addr,
              "DLSettings": f"{dl_settings:02x}", "RxDelay": 1})
    return m


def _unwrap(kek: bytes, hexstr: str):
    try:
        return ref.unwrap(kek, bytes.fromhex(hexstr))
    except Exception:  # not hex, or the RFC 3394 integrity check failed
        return None


def check_join_ans(env: Environment, device: Device, dev_nonce: int, request: dict,
                   answer: dict, ns_kek: str = "ns-a-kek", as_kek: str = "as-kek") -> list:
    """What is wrong with a JoinAns, as a Network Server and the device would see it: an
    empty list when it is right. Also returns the JoinNonce and AppSKey through `answer`."""
    problems = []
    result = answer.get("Result", {}).get("ResultCode")
    if result != "Success":
        return [f"ResultCode {result}: {answer.get('Result', {}).get('Description')}"]
    for k_req, k_ans in (("TransactionID", "TransactionID"), ("SenderID", "ReceiverID"),
                         ("ReceiverID", "SenderID"), ("SenderToken", "ReceiverToken")):
        if str(request.get(k_req)).upper() != str(answer.get(k_ans)).upper():
            problems.append(f"{k_ans} {answer.get(k_ans)!r} is not the request's {k_req}")
    if answer.get("MessageType") != "JoinAns":
        problems.append(f"MessageType {answer.get('MessageType')}")
    if request["ProtocolVersion"] == "1.1" and answer.get("ReceiverNSID") != request.get("SenderNSID"):
        problems.append("ReceiverNSID not echoed")
    if not answer.get("Lifetime"):
        problems.append("no Lifetime")
    if not answer.get("SessionKeyID"):
        problems.append("no SessionKeyID")
    phy = bytes.fromhex(answer["PHYPayload"])
    opened = ref.device_open_join_accept(device.mac, device.app_key, device.nwk_key, phy,
                                         device.join_eui, dev_nonce.to_bytes(2, "big"),
                                         dev_eui=device.dev_eui)
    if not opened["mic_ok"]:
        return problems + ["the join-accept's MIC does not verify for the device"]
    pt = opened["plaintext"]
    join_nonce = pt[1:4][::-1]
    net_id = pt[4:7][::-1]
    if net_id.hex().upper() != request["SenderID"].upper():
        problems.append(f"join-accept NetID {net_id.hex()} is not the NS's")
    want = ref.js_answer(device.mac, device.app_key, device.nwk_key or b"\0" * 16,
                         bytes.fromhex(request["PHYPayload"]), device.join_eui, device.dev_eui,
                         join_nonce, net_id, pt[7:11][::-1], pt[11], pt[12],
                         pt[13:29] if len(pt) > 13 else b"")
    if want.get("join_accept") != phy:
        problems.append("the join-accept differs from the reference's")
    names = (("NwkSKey",) if not device.mac.startswith("1.1") or not pt[11] & 0x80
             else ("FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey"))
    for name in names:
        env_ = answer.get(name)
        if not env_:
            problems.append(f"no {name}")
            continue
        if env_.get("KEKLabel") != ns_kek:
            problems.append(f"{name} KEKLabel {env_.get('KEKLabel')!r}, want {ns_kek}")
            continue
        try:
            plain = ref.unwrap(env.keks[ns_kek], bytes.fromhex(env_["AESKey"]))
        except Exception:  # InvalidUnwrap: the RFC 3394 integrity check failed
            plain = None
        if plain != want["keys"].get(name):
            problems.append(f"{name} unwrapped differs from the reference's derivation")
    app = answer.get("AppSKey")
    if as_kek is None:
        if app:
            problems.append("an AppSKey was sent though the AS has no KEK")
    elif not app or app.get("KEKLabel") != as_kek:
        problems.append(f"AppSKey missing or not under {as_kek}: {app}")
    elif _unwrap(env.keks[as_kek], app.get("AESKey", "")) != want["keys"]["AppSKey"]:
        problems.append("AppSKey unwrapped differs from the reference's derivation")
    answer["_join_nonce"] = int.from_bytes(join_nonce, "big")
    answer["_app_s_key"] = want["keys"].get("AppSKey")
    return problems
