#!/usr/bin/python3
"""lorakeepctl end to end: every command run as a process against a real token and a real
lorakeep-cs.

    /usr/bin/python3 tests/ctl/run.py --ctl PATH --cs PATH [--module SOFTHSM.so]
        [--rows 10000] [--keep] [--verbose]

It makes its own temporary directory with a bare SoftHSM token (no keys), a lorakeep.yml and
a sender CA map, then checks: configuration lookup and its errors; token init (twice:
idempotent), status, selftest; kek import/list/delete; part import/list; lorakeep-cs started
on the storage key lorakeepctl created; peer add/list/remove with the CA map file and the
registry; device add (wrapped keys of 24 bytes in the SQLite registry), show, list; a bulk
import of N rows with 50 bad rows mixed in (every rejection reported with its line, counts
exact, the time), the same import again (all reported present), a JSON-lines import;
reset-nonces and delete in the audit trail; exit codes of refusals and of an appliance that
is down; --help of every command; and that no key, PIN or secret appears in any output.

Each check prints "ok  NAME" or "FAIL NAME: why"; the last line is
"CASES: N passed, M failed" and the exit status is 1 when anything failed.
"""

import argparse
import json
import os
import pwd
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import Checks, Environment, write_secret  # noqa: E402

JOIN_EUI = "70B3D57ED0000000"
EXIT = {"ok": 0, "failure": 1, "usage": 2, "not_found": 3, "exists": 4, "unavailable": 5,
        "rejected_rows": 6, "check_failed": 7}


class Secrets:
    """Every key, PIN and secret the test hands to lorakeepctl, to look for in its output."""

    def __init__(self):
        self.keys = set()  # bytes
        self.texts = set()

    def key(self, n: int = 16) -> bytes:
        k = os.urandom(n)
        self.keys.add(k)
        return k


def registry_db(env):
    return sqlite3.connect(f"file:{env.registry}?mode=ro", uri=True)


def audit_rows(env, action: str):
    db = registry_db(env)
    try:
        return db.execute("SELECT actor, subject, detail FROM audit WHERE action = ?",
                          (action,)).fetchall()
    finally:
        db.close()


def key_file(env, secrets: Secrets, name: str, n: int = 16, binary: bool = False) -> tuple:
    k = secrets.key(n)
    path = os.path.join(env.work, "keys", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_secret(path, k if binary else k.hex().encode() + b"\n")
    return path, k


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def configuration(c: Checks, env):
    r = env.ctl("token", "status", config=False, env={"LORAKEEP_CONFIG": "/nonexistent/x.yml"})
    c.record("LORAKEEP_CONFIG naming a missing file: exit 2, the path named",
             r.code == EXIT["usage"] and "/nonexistent/x.yml" in r.err, r.describe())
    r = env.ctl("device", "list", config=False)
    c.record("no --config, no LORAKEEP_CONFIG, no /etc/lorakeep/lorakeep.yml: exit 2",
             os.path.exists("/etc/lorakeep/lorakeep.yml") or
             (r.code == EXIT["usage"] and "/etc/lorakeep/lorakeep.yml" in r.err), r.describe())
    r = env.ctl("device", "list", "--json", config=False, env={"LORAKEEP_CONFIG": env.config})
    c.record("LORAKEEP_CONFIG is used without --config", r.code == 0 and r.json() == [],
             r.describe())
    bad = os.path.join(env.work, "bad.yml")
    with open(bad, "w") as f:
        f.write("appliance:\n  workers: 0\n")
    r = env.ctl("--config", bad, "token", "status", config=False)
    c.record("a broken appliance section: exit 2 naming the key",
             r.code == EXIT["usage"] and "appliance" in r.err, r.describe())
    r = env.ctl("device", "frobnicate")
    c.record("an unknown subcommand: exit 2", r.code == EXIT["usage"], r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0000000000000001")
    c.record("a missing required option: exit 2", r.code == EXIT["usage"], r.describe())
    seed = os.path.join(env.work, "no-such-seed")
    r = env.ctl("bench", "--seed-file", seed, "--net-id", "000013", "--joins", "10",
                "--plot", "p.png")
    c.record("bench --plot without --out: exit 2, saying so",
             r.code == EXIT["usage"] and "--plot needs --out" in r.err, r.describe())
    r = env.ctl("bench", "--seed-file", seed, "--net-id", "000013", "--joins", "0",
                "--out", "r.json", "--plot", "p.png")
    c.record("bench --plot with --joins 0: exit 2, no load to draw",
             r.code == EXIT["usage"] and "--joins 0" in r.err and "matplotlib" not in r.err,
             r.describe())


def help_everywhere(c: Checks, env):
    commands = [[], ["token"], ["token", "init"], ["token", "status"], ["token", "selftest"],
                ["kek"], ["kek", "import"], ["kek", "list"], ["kek", "delete"], ["part"],
                ["part", "import"], ["part", "list"], ["peer"], ["peer", "add"], ["peer", "list"],
                ["peer", "remove"], ["device"], ["device", "add"], ["device", "import"],
                ["device", "list"], ["device", "show"], ["device", "delete"],
                ["device", "reset-nonces"]]
    bad = []
    for cmd in commands:
        r = env.ctl(*cmd, "--help", config=False)
        leaf = len(cmd) == 2 or not cmd
        if r.code != 0 or (leaf and "Example" not in r.out):
            bad.append(" ".join(cmd) or "(top)")
    c.record(f"--help on all {len(commands)} commands: exit 0, an example on every command",
             not bad, "no help or example: " + ", ".join(bad))


def token(c: Checks, env):
    r = env.ctl("token", "status")
    c.record("token status before init: exit 7, the storage key missing",
             r.code == EXIT["check_failed"] and "MISSING" in r.out, r.describe())
    r = env.ctl("token", "init", "--json")
    ok = r.code == 0 and r.json().get("created") is True
    c.record("token init creates the storage key", ok, r.describe())
    r = env.ctl("token", "init")
    c.record("token init again: exit 0, the key already present (idempotent)",
             r.code == 0 and "already present" in r.out, r.describe())
    r = env.ctl("token", "status", "--json")
    ok = False
    if r.code == 0:
        j = r.json()
        storage = [k for k in j["keys"] if k["role"] == "storage"]
        ok = (j["storage_key"] and j["ok"] and len(storage) == 1 and storage[0]["policy"] == "ok"
              and storage[0]["bits"] == 256 and "EXTRACTABLE" not in storage[0]["flags"]
              and j["token"]["label"] == harness.TOKEN_LABEL)
    c.record("token status: one AES-256 storage key, policy ok", ok, r.describe())
    r = env.ctl("token", "status")
    c.record("token status as a table", r.code == 0 and "lorakeep/storage" in r.out
             and "ROLE" in r.out, r.describe())
    wrong = os.path.join(env.work, "wrong.pin")
    write_secret(wrong, b"0000000000000000\n")
    with open(env.config) as f:
        text = f.read()
    pin_line = f"    pin_file: {os.path.join(env.work, 'user.pin')}\n"
    for name, replacement in (("wrong-pin.yml", f"    pin_file: {wrong}\n"),
                              ("env-pin.yml", "")):
        with open(os.path.join(env.work, name), "w") as f:
            f.write(text.replace(pin_line, replacement))
    r = env.ctl("--config", os.path.join(env.work, "wrong-pin.yml"), "token", "status",
                config=False)
    c.record("a PIN the token refuses: exit 2", r.code == EXIT["usage"] and "PIN" in r.err,
             r.describe())
    r = env.ctl("--config", os.path.join(env.work, "env-pin.yml"), "token", "status",
                config=False, env={"LORAKEEP_PIN": env.pin.decode()})
    c.record("the PIN from LORAKEEP_PIN when there is no pin_file", r.code == 0, r.describe())
    r = env.ctl("--config", os.path.join(env.work, "env-pin.yml"), "token", "status",
                config=False)
    c.record("no pin_file and no LORAKEEP_PIN: exit 2 naming both",
             r.code == EXIT["usage"] and "LORAKEEP_PIN" in r.err, r.describe())
    r = env.ctl("token", "selftest")
    c.record("token selftest passes", r.code == 0 and "passed" in r.out, r.describe())
    rows = audit_rows(env, "token.init")
    c.record("token init is in the audit trail (twice)",
             len(rows) == 2 and rows[0][0].startswith("lorakeepctl:"), repr(rows))


def keks(c: Checks, env, secrets: Secrets):
    hex_file, _ = key_file(env, secrets, "ns-a.kek")
    bin_file, _ = key_file(env, secrets, "as.kek", 32, binary=True)
    r = env.ctl("kek", "import", "--label", "ns-a-kek", "--key-file", hex_file)
    c.record("kek import from a hex file", r.code == 0, r.describe())
    r = env.ctl("kek", "import", "--label", "as-kek", "--key-file", bin_file, "--json")
    c.record("kek import from a 32-byte binary file (AES-256)",
             r.code == 0 and r.json().get("bits") == 256, r.describe())
    r = env.ctl("kek", "import", "--label", "ns-a-kek", "--key-file", hex_file)
    c.record("kek import of a label already there: exit 4", r.code == EXIT["exists"], r.describe())
    short = os.path.join(env.work, "keys", "short.kek")
    write_secret(short, os.urandom(15))
    r = env.ctl("kek", "import", "--label", "short", "--key-file", short)
    c.record("kek import of a 15-byte file: exit 2", r.code == EXIT["usage"], r.describe())
    open_file, _ = key_file(env, secrets, "open.kek")
    os.chmod(open_file, 0o644)
    r = env.ctl("kek", "import", "--label", "ns-b-kek", "--key-file", open_file)
    c.record("kek import warns about a world-readable key file",
             r.code == 0 and "readable by group or others" in r.err, r.describe())
    r = env.ctl("kek", "import", "--label", "bad label!", "--key-file", hex_file)
    c.record("kek import with a bad label: exit 2", r.code == EXIT["usage"], r.describe())
    r = env.ctl("kek", "list", "--json")
    ok = False
    if r.code == 0:
        got = {k["label"]: k for k in r.json()}
        ok = (set(got) == {"ns-a-kek", "as-kek", "ns-b-kek"} and got["ns-a-kek"]["bits"] == 128
              and got["as-kek"]["bits"] == 256 and all(k["policy"] == "ok" for k in got.values()))
    c.record("kek list: the three KEKs, sizes and policy", ok, r.describe())
    r = env.ctl("kek", "delete", "--label", "ns-b-kek")
    c.record("kek delete", r.code == 0, r.describe())
    r = env.ctl("kek", "list", "--json")
    c.record("kek list after delete", r.code == 0 and
             sorted(k["label"] for k in r.json()) == ["as-kek", "ns-a-kek"], r.describe())
    r = env.ctl("kek", "delete", "--label", "ns-b-kek")
    c.record("kek delete of an unknown label: exit 3", r.code == EXIT["not_found"], r.describe())
    c.record("kek import and delete are audited",
             len(audit_rows(env, "kek.import")) == 3 and len(audit_rows(env, "kek.delete")) == 1,
             repr(audit_rows(env, "kek.import")))


def parts(c: Checks, env, secrets: Secrets):
    path, _ = key_file(env, secrets, "part.key")
    r = env.ctl("part", "import", "--part-number", "ATECC608-TEST", "--key-file", path)
    c.record("part import", r.code == 0, r.describe())
    r = env.ctl("part", "import", "--part-number", "ATECC608-TEST", "--key-file", path)
    c.record("part import twice: exit 4", r.code == EXIT["exists"], r.describe())
    r = env.ctl("part", "list", "--json")
    c.record("part list", r.code == 0 and [p["part_number"] for p in r.json()] == ["ATECC608-TEST"]
             and r.json()[0]["policy"] == "ok", r.describe())
    r = env.ctl("token", "status", "--json")
    roles = sorted(k["role"] for k in r.json()["keys"]) if r.code == 0 else []
    c.record("token status lists storage key, KEKs and part key",
             roles == ["kek", "kek", "part", "storage"], r.describe())


def live_token(c: Checks, env, secrets: Secrets):
    """A KEK imported while lorakeep-cs runs; the token's files stay lorakeep-cs's user's."""
    path, _ = key_file(env, secrets, "late.kek")
    r = env.ctl("kek", "import", "--label", "late-kek", "--key-file", path)
    c.record("kek import while lorakeep-cs runs", r.code == 0 and env.cs.poll() is None,
             r.describe())
    if env.user:
        uid = pwd.getpwnam(env.user).pw_uid
        wrong = []
        for root, _, files in os.walk(os.path.join(env.work, "token")):
            for name in files:
                if os.stat(os.path.join(root, name)).st_uid != uid:
                    wrong.append(name)
        c.record(f"every token file written by lorakeepctl (run as root) belongs to "
                 f"appliance.user ({env.user})", not wrong, ", ".join(wrong))
    r = env.ctl("kek", "delete", "--label", "late-kek")
    c.record("kek delete while lorakeep-cs runs", r.code == 0, r.describe())


def read_map(env) -> dict:
    """The sender CA map as lorakeepctl writes it: "key": "value" lines."""
    out = {}
    with open(env.ca_map) as f:
        for line in f:
            m = re.match(r'^"([^"]*)":\s*"([^"]*)"\s*$', line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


def peers(c: Checks, env):
    pki = os.path.join(env.work, "pki")
    ca_a = harness.make_ca(os.path.join(pki, "ns-a.pem"), "ns-a")
    ca_b = harness.make_ca(os.path.join(pki, "as.pem"), "as")
    ca_c = harness.make_ca(os.path.join(pki, "ns-c.pem"), "ns-c")
    with_key = harness.make_ca(os.path.join(pki, "with-key.pem"), "k", with_key=True)
    r = env.ctl("peer", "add", "--net-id", "000013", "--ca", ca_a, "--kek-label", "ns-a-kek")
    c.record("peer add --net-id with a KEK", r.code == 0, r.describe())
    r = env.ctl("peer", "add", "--as-id", "as.example.com", "--ca", ca_b, "--plaintext-keys")
    c.record("peer add --as-id with plaintext keys (and a warning)",
             r.code == 0 and "plaintext" in r.err, r.describe())
    r = env.ctl("peer", "add", "--net-id", "00abcd", "--ca", ca_c, "--kek-label", "ns-a-kek")
    c.record("peer add of a lower-case NetID", r.code == 0, r.describe())
    m = read_map(env)
    ok = m == {"000013": "ca-000013.pem", "as.example.com": "ca-as.example.com.pem",
               "00ABCD": "ca-00ABCD.pem"}
    copied = os.path.join(env.work, "ca-000013.pem")
    ok = ok and os.path.exists(copied) and (os.stat(copied).st_mode & 0o777) == 0o644
    ok = ok and open(copied, "rb").read() == open(ca_a, "rb").read()
    c.record("the sender CA map names the copied CA files (0644, same bytes)", ok, repr(m))
    db = registry_db(env)
    rows = sorted(db.execute("SELECT kind, id, kek_label, plaintext_keys FROM peers").fetchall())
    db.close()
    c.record("the registry holds the peers",
             rows == [("as", "as.example.com", None, 1), ("ns", "000013", "ns-a-kek", 0),
                      ("ns", "00ABCD", "ns-a-kek", 0)], repr(rows))
    r = env.ctl("peer", "list", "--json")
    ok = r.code == 0 and sorted((p["kind"], p["id"], p["ca"]) for p in r.json()) == [
        ("as", "as.example.com", "ca-as.example.com.pem"), ("ns", "000013", "ca-000013.pem"),
        ("ns", "00ABCD", "ca-00ABCD.pem")]
    c.record("peer list --json", ok, r.describe())
    r = env.ctl("peer", "add", "--net-id", "000013", "--kek-label", "as-kek")
    c.record("peer add of a known peer without --ca keeps its CA, changes the KEK",
             r.code == 0 and read_map(env).get("000013") == "ca-000013.pem", r.describe())
    r = env.ctl("kek", "delete", "--label", "as-kek")
    c.record("kek delete refuses a KEK a peer uses: exit 4", r.code == EXIT["exists"]
             and "000013" in r.err, r.describe())
    r = env.ctl("peer", "add", "--net-id", "000099", "--ca", with_key)
    c.record("peer add with a CA file holding a private key: exit 2", r.code == EXIT["usage"],
             r.describe())
    r = env.ctl("peer", "add", "--net-id", "000099", "--ca", os.path.join(env.work, "user.pin"))
    c.record("peer add with a CA file that is no PEM: exit 2", r.code == EXIT["usage"],
             r.describe())
    r = env.ctl("peer", "add", "--net-id", "000099", "--ca", ca_a, "--kek-label", "x",
                "--plaintext-keys")
    c.record("peer add with --kek-label and --plaintext-keys: exit 2", r.code == EXIT["usage"],
             r.describe())
    r = env.ctl("peer", "add", "--net-id", "000099")
    c.record("peer add of a new peer without --ca: exit 2", r.code == EXIT["usage"], r.describe())
    r = env.ctl("peer", "add", "--as-id", "abcdef", "--ca", ca_a)
    c.record("peer add with an AS-ID that reads as a NetID: exit 2", r.code == EXIT["usage"],
             r.describe())
    c.record("refused peer adds leave the map as it was", read_map(env) == {
        "000013": "ca-000013.pem", "as.example.com": "ca-as.example.com.pem",
        "00ABCD": "ca-00ABCD.pem"}, repr(read_map(env)))
    r = env.ctl("peer", "remove", "--net-id", "00ABCD")
    c.record("peer remove", r.code == 0, r.describe())
    ok = "00ABCD" not in read_map(env) and not os.path.exists(os.path.join(env.work,
                                                                           "ca-00ABCD.pem"))
    db = registry_db(env)
    ok = ok and db.execute("SELECT count(*) FROM peers WHERE id = '00ABCD'").fetchone()[0] == 0
    db.close()
    c.record("peer remove: out of the map and the registry, the copied CA file deleted", ok,
             repr(read_map(env)))
    r = env.ctl("peer", "remove", "--net-id", "00ABCD")
    c.record("peer remove of an unknown peer: exit 3", r.code == EXIT["not_found"], r.describe())
    c.record("peer add and remove are audited",
             len(audit_rows(env, "peer.add")) == 4 and len(audit_rows(env, "peer.remove")) == 1,
             repr(audit_rows(env, "peer.add")))


def device_row(env, dev_eui: str):
    db = registry_db(env)
    try:
        return db.execute("SELECT mac_version, app_key, nwk_key, part_number, serial, "
                          "hex(home_net_id), as_id, hex(allowed_net_ids) FROM devices "
                          "WHERE dev_eui = ?", (bytes.fromhex(dev_eui),)).fetchone()
    finally:
        db.close()


def devices(c: Checks, env, secrets: Secrets) -> list:
    """Adds three devices; their DevEUIs (the bulk import meets them again)."""
    app, app_key = key_file(env, secrets, "d1.app")
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0001", "--join-eui", JOIN_EUI,
                "--mac-version", "1.0.3", "--app-key-file", app, "--home-net-id", "000013",
                "--as-id", "as.example.com", "--allowed-net-id", "600010", "--allowed-net-id",
                "600011")
    c.record("device add 1.0.3 with an AppKey file", r.code == 0, r.describe())
    row = device_row(env, "0004A30B001C0001")
    ok = (row is not None and row[0] == "1.0.3" and len(row[1]) == 24 and not row[2]
          and row[1] != app_key and row[5] == "000013" and row[6] == "as.example.com"
          and row[7] == "600010600011")
    c.record("the registry holds a 24-byte wrapped AppKey, not the key", ok, repr(row))

    app2, _ = key_file(env, secrets, "d2.app")
    nwk2, _ = key_file(env, secrets, "d2.nwk", binary=True)
    r = env.ctl("device", "add", "--dev-eui", "0004a30b001c0002", "--join-eui", JOIN_EUI,
                "--mac-version", "1.1.0", "--app-key-file", app2, "--nwk-key-file", nwk2,
                "--home-net-id", "000013", "--hnsid", "0000000000000013", "--json")
    c.record("device add 1.1 (\"1.1.0\") with AppKey and a binary NwkKey file",
             r.code == 0 and r.json()["device"]["root_keys"] == {"kind": "wrapped",
                                                                 "app_key": True, "nwk_key": True},
             r.describe())
    row = device_row(env, "0004A30B001C0002")
    c.record("1.1: both root keys wrapped (24 bytes each)",
             row is not None and row[0] == "1.1" and len(row[1]) == 24 and len(row[2]) == 24
             and row[1] != row[2], repr(row))

    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0003", "--join-eui", JOIN_EUI,
                "--mac-version", "1.1", "--part-number", "ATECC608-TEST", "--serial",
                "0123456789AB", "--home-net-id", "000013")
    row = device_row(env, "0004A30B001C0003")
    c.record("device add of a secure-element device (part number and serial)",
             r.code == 0 and row is not None and row[3] == "ATECC608-TEST"
             and row[4] == bytes.fromhex("0123456789AB") and row[1] is None, r.describe())

    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0001", "--join-eui", JOIN_EUI,
                "--mac-version", "1.0.3", "--app-key-file", app, "--home-net-id", "000013")
    c.record("device add of a device already there: exit 4", r.code == EXIT["exists"],
             r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0009", "--join-eui", JOIN_EUI,
                "--mac-version", "1.1", "--app-key-file", app, "--home-net-id", "000013")
    c.record("device add of a 1.1 device without NwkKey: exit 2", r.code == EXIT["usage"]
             and "nwk_key" in r.err, r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0009", "--join-eui", JOIN_EUI,
                "--mac-version", "1.0.2", "--home-net-id", "000013")
    c.record("device add without root keys: exit 2", r.code == EXIT["usage"], r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0009", "--join-eui", JOIN_EUI,
                "--mac-version", "1.3", "--app-key-file", app, "--home-net-id", "000013")
    c.record("device add with an unknown MAC version: exit 2", r.code == EXIT["usage"],
             r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C0009", "--join-eui", JOIN_EUI,
                "--mac-version", "1.0.2", "--app-key-file", os.path.join(env.work, "nope"),
                "--home-net-id", "000013")
    c.record("device add with a missing key file: exit 2", r.code == EXIT["usage"], r.describe())

    r = env.ctl("device", "show", "--dev-eui", "0004A30B001C0002", "--json")
    ok = False
    if r.code == 0:
        j = r.json()
        ok = (j["device"]["mac_version"] == "1.1" and j["device"]["hnsid"] == "0000000000000013"
              and j["nonces"]["join_nonce_last"] == 0 and j["sessions"] == [])
    c.record("device show --json", ok, r.describe())
    r = env.ctl("device", "show", "--dev-eui", "0004A30B001C0001")
    c.record("device show as text", r.code == 0 and "as.example.com" in r.out
             and "600010 600011" in r.out, r.describe())
    r = env.ctl("device", "show", "--dev-eui", "0004A30B00FFFFFF")
    c.record("device show of an unknown device: exit 3", r.code == EXIT["not_found"],
             r.describe())
    r = env.ctl("device", "show", "--dev-eui", "xyz")
    c.record("device show with a bad DevEUI: exit 2", r.code == EXIT["usage"], r.describe())
    return ["0004A30B001C0001", "0004A30B001C0002", "0004A30B001C0003"]


def import_rows(env, secrets: Secrets, n: int, present: list, seed: int):
    """n valid rows (3 of them devices already present), then 50 bad ones mixed in.
    Returns (lines, expected rejected line numbers, expected present line numbers)."""
    rng = random.Random(seed)
    header = "dev_eui,join_eui,mac_version,app_key,nwk_key,home_net_id,as_id,allowed_net_ids"
    valid = []
    for i in range(n - len(present)):
        eui = f"{0x70B3D50000000000 + seed * 0x1000000 + i:016X}"
        mac = rng.choice(["1.0.2", "1.0.3", "1.0.3", "1.0.4", "1.1"])
        app = os.urandom(16).hex()
        nwk = os.urandom(16).hex() if mac == "1.1" else ""
        allowed = rng.choice(["", "600010", "600010 600011"])
        as_id = rng.choice(["", "as.example.com"])
        valid.append([eui, JOIN_EUI, mac, app, nwk, "000013", as_id, allowed])
    for eui in present:
        valid.append([eui, JOIN_EUI, "1.0.3", os.urandom(16).hex(), "", "000013", "", ""])
    rng.shuffle(valid)
    bad = []
    for k in range(10):
        r = list(valid[rng.randrange(len(valid))])
        r[0] = f"{0x0BAD000000000000 + seed * 0x1000 + k:016X}"
        r[3] = r[3][:7] + "G" + r[3][8:]
        bad.append(r)                                                # bad hex
    for k in range(10):
        r = list(valid[rng.randrange(len(valid))])
        r[0] = f"{0x0BAD100000000000 + seed * 0x1000 + k:016X}"
        r[3] = r[3][:30] if k % 2 else r[3] + "00"
        bad.append(r)                                                # wrong length
    for k in range(10):
        r = list(valid[rng.randrange(len(valid))])
        r[0] = f"{0x0BAD200000000000 + seed * 0x1000 + k:016X}"
        r[2] = ["1.2", "2.0", "1.0.9", "v1", "1.1.1"][k % 5]
        bad.append(r)                                                # unknown MAC version
    dups = []
    for k in range(10):
        r = list(valid[rng.randrange(len(valid))])                   # the same DevEUI again
        r[3] = os.urandom(16).hex()
        dups.append(r)
    for k in range(10):
        r = list(valid[rng.randrange(len(valid))])
        r[0] = f"{0x0BAD400000000000 + seed * 0x1000 + k:016X}"
        if k % 5 == 0:
            r[5] = ""                                                # no home NetID
        elif k % 5 == 1:
            r = r[:6]                                                # a field short
        elif k % 5 == 2:
            r[1] = ""                                                # no JoinEUI
        elif k % 5 == 3:
            r[2], r[4] = "1.1", ""                                   # 1.1 without NwkKey
        else:
            r[3], r[4] = "", ""                                      # no root key
        bad.append(r)
    rows = [("ok", r) for r in valid]
    for kind, extra in (("bad", bad), ("dup", dups)):
        for r in extra:
            rows.insert(rng.randrange(len(rows) + 1), (kind, r))
    lines = [header, "# exported from the manufacturer's portal", ""]
    rejected, already = set(), set()
    seen = {}
    for kind, r in rows:
        lines.append(",".join(r))
        line_no = len(lines)
        if kind == "bad":
            rejected.add(line_no)
            continue
        secrets.texts.add(r[3].lower())
        if r[0] in seen:
            rejected.add(line_no)  # a DevEUI seen before: the later row is refused
            continue
        seen[r[0]] = line_no
        if r[0] in present:
            already.add(line_no)
    return lines, rejected, already


def bulk_import(c: Checks, env, secrets: Secrets, present: list, n: int):
    lines, rejected, already = import_rows(env, secrets, n, present, seed=1)
    path = os.path.join(env.work, "devices.csv")
    write_secret(path, ("\n".join(lines) + "\n").encode())
    data_rows = sum(1 for line in lines[1:] if line and not line.startswith("#"))
    added = data_rows - len(rejected) - len(already)

    r = env.ctl("device", "import", path)
    c.record(f"device import of {data_rows} rows ({len(rejected)} bad): exit 6",
             r.code == EXIT["rejected_rows"], r.describe())
    got_rejected = {int(m.group(1)) for m in re.finditer(r"devices\.csv:(\d+): rejected: ",
                                                         r.out)}
    got_present = {int(m.group(1)) for m in re.finditer(r"devices\.csv:(\d+): already present",
                                                        r.out)}
    c.record("every rejected row reported once, with its line",
             got_rejected == rejected and len(re.findall(r": rejected: ", r.out)) == len(rejected),
             f"missing {sorted(rejected - got_rejected)[:10]} extra "
             f"{sorted(got_rejected - rejected)[:10]}")
    c.record("rows already in the registry reported as present", got_present == already,
             f"{sorted(got_present)} vs {sorted(already)}")
    summary = re.search(r"([\d,]+) rows: ([\d,]+) added, ([\d,]+) already present, ([\d,]+) "
                        r"rejected", r.out)
    counts = tuple(int(g.replace(",", "")) for g in summary.groups()) if summary else None
    c.record("the summary counts exactly", counts == (data_rows, added, len(already),
                                                     len(rejected)),
             f"{counts} vs {(data_rows, added, len(already), len(rejected))}")
    reasons = r.out
    c.record("the reasons name what is wrong",
             all(s in reasons for s in ("app_key: not hexadecimal", "app_key: expected 32 hex",
                                        "mac_version:", "repeats line", "home_net_id: missing",
                                        "expected 8 fields", "nwk_key: missing",
                                        "no root keys")), r.out[-2000:])
    c.record("no progress bar when stderr is not a terminal", "ETA" not in r.err, r.err[-300:])
    # Reported, not asserted: speed is the benchmark's to prove (docs/benchmarks.md).
    print(f"     import of {data_rows} rows: {r.seconds:.1f} s")
    db = registry_db(env)
    count = db.execute("SELECT count(*) FROM devices").fetchone()[0]
    wrapped = db.execute("SELECT count(*) FROM devices WHERE length(app_key) = 24 AND "
                         "(nwk_key IS NULL OR length(nwk_key) IN (0, 24))").fetchone()[0]
    nwk = db.execute("SELECT count(*) FROM devices WHERE mac_version = '1.1' AND "
                     "length(nwk_key) = 24").fetchone()[0]
    db.close()
    c.record("the registry holds every added device, keys wrapped (24 bytes)",
             count == added + len(present) and wrapped == added + len(present) - 1 and nwk >= 1,
             f"{count} devices, {wrapped} wrapped, expected {added + len(present)}")

    r = env.ctl("device", "import", path, "--json")
    ok = False
    if r.code == EXIT["rejected_rows"]:
        j = r.json()
        ok = (j["added"] == 0 and j["already_present"] == added + len(already)
              and j["rejected"] == len(rejected) and len(j["already_present_rows"]) ==
              added + len(already) and {x["line"] for x in j["rejections"]} == rejected)
    c.record("the same import again: every valid row already present, nothing duplicated", ok,
             r.describe()[:400])
    db = registry_db(env)
    c.record("the second import added no row",
             db.execute("SELECT count(*) FROM devices").fetchone()[0] == count, "")
    db.close()
    rows = audit_rows(env, "device.import")
    c.record("both imports are in the audit trail", len(rows) == 2 and
             f"added={added}" in rows[0][2] and "added=0" in rows[1][2], repr(rows))

    # JSON lines: the same fields; a clean file exits 0.
    jl = os.path.join(env.work, "more.jsonl")
    recs = []
    for i in range(40):
        rec = {"dev_eui": f"{0x5A00000000000000 + i:016X}", "join_eui": JOIN_EUI,
               "mac_version": "1.1" if i % 2 else "1.0.2", "app_key": secrets.key().hex(),
               "home_net_id": "000013", "allowed_net_ids": ["600010", "600011"] if i % 3 else []}
        if i % 2:
            rec["nwk_key"] = secrets.key().hex()
        recs.append(json.dumps(rec))
    write_secret(jl, ("\n".join(recs) + "\n").encode())
    r = env.ctl("device", "import", jl, "--json")
    c.record("a JSON-lines import of 40 devices: exit 0, all added",
             r.code == 0 and r.json()["added"] == 40 and r.json()["format"] == "jsonl",
             r.describe())
    bad = os.path.join(env.work, "bad.jsonl")
    write_secret(bad, b'{"dev_eui": "5B00000000000001", "join_eui": "' + JOIN_EUI.encode() +
                 b'", "mac_version": "1.0.2", "app_key": "' + secrets.key().hex().encode() +
                 b'", "home_net_id": "000013"}\n{"dev_eui": 5}\nnot json\n'
                 b'{"dev_eui": "5B00000000000002", "colour": "red"}\n')
    r = env.ctl("device", "import", bad, "--json")
    ok = False
    if r.code == EXIT["rejected_rows"]:
        j = r.json()
        ok = j["added"] == 1 and j["rejected"] == 3 and [x["line"] for x in j["rejections"]] == [
            2, 3, 4] and "unknown field 'colour'" in j["rejections"][2]["reason"]
    c.record("a JSON-lines import with bad lines: each rejected with its line", ok, r.describe())
    if shutil.which("script"):
        tty = os.path.join(env.work, "tty.csv")
        write_secret(tty, ("dev_eui,join_eui,mac_version,app_key,home_net_id\n" + "".join(
            f"{0x5C00000000000000 + i:016X},{JOIN_EUI},1.0.2,{secrets.key().hex()},000013\n"
            for i in range(300))).encode())
        cmd = f"{env.args.ctl} --config {env.config} device import {tty} >/dev/null"
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        env.outputs.append(p.stdout)
        shown = p.stdout.decode(errors="replace")
        c.record("on a terminal: a progress bar with the rate and ETA",
                 p.returncode == 0 and "300/300" in shown and "rows/s" in shown
                 and "ETA" in shown, repr(shown[-300:]))
        extra = 300
    else:
        extra = 0
    bom = os.path.join(env.work, "excel.csv")
    write_secret(bom, b"\xef\xbb\xbf Dev_EUI , JOIN_EUI,mac_version,app_key,home_net_id\r\n" +
                 f'5D00000000000001,{JOIN_EUI},1.0.2,"{secrets.key().hex()}",000013\r\n'.encode())
    r = env.ctl("device", "import", bom)
    c.record("a spreadsheet's CSV (byte order mark, CRLF, column names in any case, quotes)",
             r.code == 0 and "1 added" in r.out, r.describe())
    extra += 1
    hdr = os.path.join(env.work, "bad-header.csv")
    write_secret(hdr, b"dev_eui,join_eui,mac_version,appkey,home_net_id\n")
    r = env.ctl("device", "import", hdr)
    c.record("a CSV with an unknown column: exit 2, the column named",
             r.code == EXIT["usage"] and "appkey" in r.err, r.describe())
    return count + 41 + extra


def listing(c: Checks, env, total: int):
    r = env.ctl("device", "list", "--json")
    ok = r.code == 0 and len(r.json()) == total
    euis = [d["dev_eui"] for d in r.json()] if r.code == 0 else []
    c.record(f"device list --json: all {total} devices in DevEUI order",
             ok and euis == sorted(euis), r.describe()[:300])
    r = env.ctl("device", "list", "--limit", "5")
    c.record("device list --limit 5 as a table", r.code == 0 and len(r.out.strip().splitlines())
             == 6 and r.out.startswith("DEVEUI"), r.describe())
    if len(euis) > 10:
        r = env.ctl("device", "list", "--after", euis[9], "--limit", "3", "--json")
        c.record("device list --after", r.code == 0 and [d["dev_eui"] for d in r.json()] ==
                 euis[10:13], r.describe())


def nonces_and_delete(c: Checks, env):
    eui = "0004A30B001C0002"
    r = env.ctl("device", "reset-nonces", "--dev-eui", eui)
    rows = audit_rows(env, "device.reset-nonces")
    c.record("device reset-nonces: exit 0 and in the audit trail",
             r.code == 0 and len(rows) == 1 and rows[0][1] == eui
             and rows[0][0].startswith("lorakeepctl:") and "join_nonce_last=0 kept" in rows[0][2],
             r.describe() + repr(rows))
    r = env.ctl("device", "reset-nonces", "--dev-eui", "0004A30B00FFFFFF")
    c.record("device reset-nonces of an unknown device: exit 3", r.code == EXIT["not_found"],
             r.describe())
    r = env.ctl("device", "delete", "--dev-eui", eui)
    rows = audit_rows(env, "device.delete")
    c.record("device delete: gone, audited", r.code == 0 and device_row(env, eui) is None
             and len(rows) == 1 and rows[0][1] == eui, r.describe())
    r = env.ctl("device", "delete", "--dev-eui", eui)
    c.record("device delete again: exit 3", r.code == EXIT["not_found"], r.describe())


def appliance_down(c: Checks, env, secrets: Secrets):
    env.stop_cs()
    app, _ = key_file(env, secrets, "down.app")
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C00D0", "--join-eui", JOIN_EUI,
                "--mac-version", "1.0.2", "--app-key-file", app, "--home-net-id", "000013")
    c.record("device add with lorakeep-cs down: exit 5, nothing added",
             r.code == EXIT["unavailable"] and device_row(env, "0004A30B001C00D0") is None,
             r.describe())
    path = os.path.join(env.work, "down.csv")
    write_secret(path, ("dev_eui,join_eui,mac_version,app_key,home_net_id\n" + "".join(
        f"{0x0D00000000000000 + i:016X},{JOIN_EUI},1.0.2,{secrets.key().hex()},000013\n"
        for i in range(20))).encode())
    r = env.ctl("device", "import", path)
    c.record("device import with lorakeep-cs down: exit 5, rows reported not imported",
             r.code == EXIT["unavailable"] and "not imported" in r.out, r.describe())
    r = env.ctl("device", "add", "--dev-eui", "0004A30B001C00D1", "--join-eui", JOIN_EUI,
                "--mac-version", "1.1", "--part-number", "ATECC608-TEST", "--serial", "01",
                "--home-net-id", "000013")
    c.record("a part-number device needs no appliance: added while it is down", r.code == 0,
             r.describe())


def no_secrets(c: Checks, env, secrets: Secrets):
    blob = b"\n".join(env.outputs)
    text = blob.decode(errors="replace").lower()
    leaked = [k.hex() for k in secrets.keys if k in blob or k.hex() in text]
    runs = set(re.findall(r"[0-9a-f]{32,}", text))
    leaked += [t for t in secrets.texts if any(t in run for run in runs)]
    pin = env.pin.decode()
    c.record(f"no key ({len(secrets.keys) + len(secrets.texts)}), PIN or secret in any output "
             f"({len(blob) // 1024} KiB)", not leaked and pin not in text, f"{len(leaked)} leaked")
    try:
        with open(os.path.join(env.run_dir, "audit.log"), "rb") as f:
            audit = f.read()
    except OSError:
        audit = b""
    lines = [json.loads(line) for line in audit.splitlines() if line.strip()]
    imports = [x for x in lines if x.get("operation") == "import_root_key"]
    c.record("lorakeep-cs's audit log names lorakeepctl as the caller of the imports",
             imports and all(x["caller"].startswith("lorakeepctl:") for x in imports)
             and all(x.get("plaintext_input") for x in imports), f"{len(imports)} imports")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ctl", required=True, help="the lorakeepctl binary")
    p.add_argument("--cs", required=True, help="the lorakeep-cs binary")
    p.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so")
    p.add_argument("--rows", type=int, default=10000, help="valid rows of the bulk import")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)

    checks = Checks(args.verbose)
    work = tempfile.mkdtemp(prefix="lorakeep-ctl-")
    env = Environment(args, work)
    secrets = Secrets()
    try:
        env.prepare()
        steps = [
            ("configuration", lambda: configuration(checks, env)),
            ("help", lambda: help_everywhere(checks, env)),
            ("token", lambda: token(checks, env)),
            ("keks", lambda: keks(checks, env, secrets)),
            ("parts", lambda: parts(checks, env, secrets)),
            ("start lorakeep-cs", env.start_cs),
            ("token while lorakeep-cs runs", lambda: live_token(checks, env, secrets)),
            ("peers", lambda: peers(checks, env)),
        ]
        for name, step in steps:
            print(f"== {name}")
            sys.stdout.flush()
            step()
        checks.on_failure = lambda: print(env.cs_tail())
        print("== devices")
        present = devices(checks, env, secrets)
        print("== import")
        total = bulk_import(checks, env, secrets, present, args.rows)
        print("== list")
        listing(checks, env, total)
        print("== nonces and delete")
        nonces_and_delete(checks, env)
        print("== appliance down")
        appliance_down(checks, env, secrets)
        no_secrets(checks, env, secrets)
    except Exception:  # a step that breaks is a failed check, not a crash
        checks.record("the test ran to the end", False, traceback.format_exc())
        print(env.cs_tail())
    finally:
        env.stop_cs()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"CASES: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
