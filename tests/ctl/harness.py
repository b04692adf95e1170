"""What the end-to-end test of lorakeepctl needs: a bare SoftHSM token (made through the
PKCS#11 C API with ctypes, so that 'lorakeepctl token init' really creates the storage key),
a lorakeep.yml, lorakeep-cs as a process, lorakeepctl runs captured, and the checks' tally.
"""

import ctypes
import datetime
import os
import pwd
import re
import select
import signal
import subprocess
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import Checks  # noqa: E402,F401  (shared tally; harness.Checks for callers)

READY = re.compile(r"^lorakeep-cs ready on (\S+)$")
TOKEN_LABEL = "lorakeep-ctl-test"


def write_secret(path: str, data: bytes, mode: int = 0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


# --------------------------------------------------------------------------
# A bare token: C_InitToken + C_InitPIN, no keys (SoftHSMv2 exports the C_* functions).
# --------------------------------------------------------------------------

CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKF_TOKEN_INITIALIZED = 0x400
CKU_SO = 0


def _bare_token(module: str, so_pin: bytes, user_pin: bytes):
    ul = ctypes.c_ulong
    lib = ctypes.CDLL(module)
    lib.C_GetSlotList.argtypes = [ctypes.c_ubyte, ctypes.POINTER(ul), ctypes.POINTER(ul)]
    lib.C_GetTokenInfo.argtypes = [ul, ctypes.c_void_p]
    lib.C_InitToken.argtypes = [ul, ctypes.c_char_p, ul, ctypes.c_char_p]
    lib.C_OpenSession.argtypes = [ul, ul, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ul)]
    lib.C_Login.argtypes = [ul, ul, ctypes.c_char_p, ul]
    lib.C_InitPIN.argtypes = [ul, ctypes.c_char_p, ul]
    lib.C_CloseSession.argtypes = [ul]
    for f in ("C_Initialize", "C_GetSlotList", "C_GetTokenInfo", "C_InitToken", "C_OpenSession",
              "C_Login", "C_InitPIN", "C_CloseSession", "C_Finalize"):
        getattr(lib, f).restype = ul

    def check(rv, what):
        if rv != 0:
            raise RuntimeError(f"{what} failed: CKR 0x{rv:X}")

    def slots():
        n = ul(0)
        check(lib.C_GetSlotList(1, None, ctypes.byref(n)), "C_GetSlotList")
        arr = (ul * n.value)()
        check(lib.C_GetSlotList(1, arr, ctypes.byref(n)), "C_GetSlotList")
        out = []
        for s in arr[:n.value]:
            info = ctypes.create_string_buffer(512)
            check(lib.C_GetTokenInfo(s, info), "C_GetTokenInfo")
            raw = info.raw
            flags = int.from_bytes(raw[96:104], "little")
            out.append((s, raw[:32].decode().strip(), flags))
        return out

    check(lib.C_Initialize(None), "C_Initialize")
    free = [s for s, _, flags in slots() if not flags & CKF_TOKEN_INITIALIZED]
    if not free:
        raise RuntimeError("no free SoftHSM slot")
    check(lib.C_InitToken(free[0], so_pin, len(so_pin), TOKEN_LABEL.encode().ljust(32)),
          "C_InitToken")
    slot = [s for s, label, _ in slots() if label == TOKEN_LABEL][0]
    session = ul(0)
    check(lib.C_OpenSession(slot, CKF_RW_SESSION | CKF_SERIAL_SESSION, None, None,
                            ctypes.byref(session)), "C_OpenSession")
    check(lib.C_Login(session, CKU_SO, so_pin, len(so_pin)), "C_Login(SO)")
    check(lib.C_InitPIN(session, user_pin, len(user_pin)), "C_InitPIN")
    check(lib.C_CloseSession(session), "C_CloseSession")
    check(lib.C_Finalize(None), "C_Finalize")


def make_bare_token(module: str, token_dir: str, user_pin: bytes) -> str:
    """A SoftHSM token directory with one initialized token and no objects; the conf path."""
    os.makedirs(os.path.join(token_dir, "tokens"))
    conf = os.path.join(token_dir, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {os.path.join(token_dir, 'tokens')}\n"
                "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n")
    so_pin = os.urandom(8).hex().encode()
    pid = os.fork()
    if pid == 0:  # the module stays out of this process
        code = 1
        try:
            os.environ["SOFTHSM2_CONF"] = conf
            _bare_token(module, so_pin, user_pin)
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported, then the child ends
            print(f"bare token: {e}", file=sys.stderr)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("could not make the bare SoftHSM token")
    return conf


# --------------------------------------------------------------------------
# PKI: CA certificates for peers, a server certificate the configuration names.
# --------------------------------------------------------------------------

def make_ca(path: str, name: str, with_key: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(key, hashes.SHA256()))
    data = cert.public_bytes(serialization.Encoding.PEM)
    if with_key:
        data += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    with open(path, "wb") as f:
        f.write(data)
    return path


# --------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------

class Result:
    def __init__(self, argv, code, out, err, seconds):
        self.argv = argv
        self.code = code
        self.out = out
        self.err = err
        self.seconds = seconds

    def json(self):
        import json
        return json.loads(self.out)

    def describe(self) -> str:
        tail = (self.err.strip().splitlines() or [""])[-3:]
        return f"exit {self.code}; stderr: {' | '.join(tail)}; stdout: {self.out.strip()[:300]}"


class Environment:
    def __init__(self, args, work: str):
        self.args = args
        self.work = work
        self.run_dir = os.path.join(work, "run")
        self.config = os.path.join(work, "lorakeep.yml")
        self.registry = os.path.join(work, "registry.db")
        self.ca_map = os.path.join(work, "config.yml")
        self.pin = os.urandom(8).hex().encode()
        self.user = "nobody" if os.geteuid() == 0 else None
        self.cs = None
        self.cs_stderr = os.path.join(work, "cs-stderr.txt")
        self.outputs = []  # every lorakeepctl stdout and stderr, for the no-secrets check

    def prepare(self):
        os.chmod(self.work, 0o755)
        os.makedirs(self.run_dir)
        write_secret(os.path.join(self.work, "user.pin"), self.pin + b"\n")
        token_conf = make_bare_token(self.args.module, os.path.join(self.work, "token"), self.pin)
        pki = os.path.join(self.work, "pki")
        os.makedirs(pki)
        server = make_ca(os.path.join(pki, "server.pem"), "server", with_key=False)
        lines = [
            "appliance:",
            "  pkcs11:",
            f"    module: {self.args.module}",
            f"    token_label: {TOKEN_LABEL}",
            f"    pin_file: {os.path.join(self.work, 'user.pin')}",
            "    environment:",
            f"      SOFTHSM2_CONF: {token_conf}",
            f"  listen: unix:{os.path.join(self.run_dir, 'cs.sock')}",
            "  workers: 2",
            "  sessions_per_worker: 1",
            f"  audit_log: {os.path.join(self.run_dir, 'audit.log')}",
        ]
        if self.user:
            lines.append(f"  user: {self.user}")
        lines += [
            "join_server:",
            "  listen: 127.0.0.1:0",
            "  tls:",
            f"    certificate: {server}",
            f"    private_key: {server}",
            "  sender_ca_map: config.yml",
            "  registry:",
            "    sqlite: registry.db",
            "  appliance:",
            f"    endpoints: [\"unix:{os.path.join(self.run_dir, 'cs.sock')}\"]",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        if self.user:
            # lorakeep-cs and lorakeepctl's token work run as `nobody`: the token is theirs.
            pw = pwd.getpwnam(self.user)
            for top in (os.path.join(self.work, "token"), self.run_dir):
                for root, _, files in os.walk(top):
                    os.chown(root, pw.pw_uid, pw.pw_gid)
                    for name in files:
                        os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    # ---- lorakeepctl ----
    def ctl(self, *argv, config=True, env=None, timeout=300) -> Result:
        cmd = [self.args.ctl] + (["--config", self.config] if config else []) + [str(a) for a in argv]
        e = dict(os.environ)
        e.pop("LORAKEEP_CONFIG", None)
        if env:
            e.update(env)
        start = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=e, stdin=subprocess.DEVNULL)
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        self.outputs.append(p.stdout)
        self.outputs.append(p.stderr)
        return Result(argv, p.returncode, out, err, time.monotonic() - start)

    # ---- lorakeep-cs ----
    def start_cs(self, timeout: float = 60):
        stderr = open(self.cs_stderr, "ab")
        self.cs = subprocess.Popen([self.args.cs, "--config", self.config], stdout=subprocess.PIPE,
                                   stderr=stderr, stdin=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < end:
            if self.cs.poll() is not None:
                raise RuntimeError(f"lorakeep-cs exited with {self.cs.returncode}: "
                                   + self.cs_tail())
            r, _, _ = select.select([self.cs.stdout], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(self.cs.stdout.fileno(), 4096)
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if READY.match(line):
                    threading.Thread(target=self._drain, daemon=True).start()
                    return
        raise RuntimeError("lorakeep-cs was not ready in time: " + self.cs_tail())

    def _drain(self):
        try:
            for _ in self.cs.stdout:
                pass
        except (OSError, ValueError):
            pass

    def stop_cs(self):
        if self.cs is None or self.cs.poll() is not None:
            return
        self.cs.send_signal(signal.SIGTERM)
        try:
            self.cs.wait(30)
        except subprocess.TimeoutExpired:
            self.cs.kill()
            self.cs.wait()

    def cs_tail(self, n: int = 15) -> str:
        try:
            with open(self.cs_stderr, "rb") as f:
                lines = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join("  | " + line for line in lines[-n:])
