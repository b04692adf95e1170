#!/usr/bin/python3
"""Tokens for tests that run lorakeep-cs as a process, from Python.

A thin wrapper around lorakeep-test-token (tests/support/make_token_main.cpp), which makes a
SoftHSMv2 token or an NSS softoken database with the storage key and KEKs, and says how to
load it. Use it as a module:

    sys.path.insert(0, "<source>/tests/support")
    import test_token
    token = test_token.make(tool, "nss", directory, pin_file, keks={"ns-kek": "ns.hex"})
    lines = token.pkcs11_yaml(pin_file)   # the appliance.pkcs11 section, indented 4
    token.hand_to("nobody")               # lorakeep-cs drops to this user

or from the command line, which prints the pkcs11 section:

    /usr/bin/python3 tests/support/test_token.py --tool build/tests/support/lorakeep-test-token
        --kind nss --dir DIR --pin-file FILE [--label LABEL] [--kek LABEL=HEXFILE]... [--user U]

The PIN and the KEKs are read from files; nothing secret is ever on a command line.
"""

import argparse
import json
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass, field

KINDS = ("softhsm", "nss")


@dataclass
class Token:
    """A token made by lorakeep-test-token: where it is and how to load it."""
    kind: str
    directory: str
    module: str
    init_args: str | None
    token_label: str
    allowed_mechanisms: bool
    environment: dict = field(default_factory=dict)

    def pkcs11_yaml(self, pin_file: str, indent: int = 4) -> list:
        """The keys of lorakeep.yml's appliance.pkcs11 section, as YAML lines."""
        pad = " " * indent
        # JSON strings are YAML double-quoted scalars: safe for NSS's quotes and blanks.
        lines = [f"{pad}module: {json.dumps(self.module)}"]
        if self.init_args is not None:
            lines.append(f"{pad}init_args: {json.dumps(self.init_args)}")
        lines.append(f"{pad}token_label: {json.dumps(self.token_label)}")
        lines.append(f"{pad}pin_file: {json.dumps(pin_file)}")
        if not self.allowed_mechanisms:
            lines.append(f"{pad}allowed_mechanisms: false")
        if self.environment:
            lines.append(f"{pad}environment:")
            for name, value in self.environment.items():
                lines.append(f"{pad}  {name}: {json.dumps(value)}")
        return lines

    def hand_to(self, user: str):
        """Gives the token's files to `user` (lorakeep-cs opens them after dropping to it)."""
        pw = pwd.getpwnam(user)
        for root, _, files in os.walk(self.directory):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


def make(tool: str, kind: str, directory: str, pin_file: str, keks=None, label=None,
         timeout: float = 120) -> Token:
    """Makes a token of `kind` in `directory` (SoftHSMv2's token directory, or NSS's database
    directory) whose user PIN is in `pin_file`, with the storage key and `keks`
    ({label: file holding the KEK in hex}). Raises RuntimeError with the tool's message."""
    if kind not in KINDS:
        raise ValueError(f"a token kind is one of {KINDS}, not {kind!r}")
    cmd = [tool, "--kind", kind, "--dir", directory, "--pin-file", pin_file]
    if label:
        cmd += ["--label", label]
    for kek_label, path in (keks or {}).items():
        cmd += ["--kek", f"{kek_label}={path}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"lorakeep-test-token failed: {p.stderr.strip()}")
    d = json.loads(p.stdout)
    return Token(kind=d["kind"], directory=os.path.abspath(directory), module=d["module"],
                 init_args=d["init_args"], token_label=d["token_label"],
                 allowed_mechanisms=d["allowed_mechanisms"], environment=d["environment"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tool", required=True, help="lorakeep-test-token")
    p.add_argument("--kind", choices=KINDS, default="softhsm")
    p.add_argument("--dir", required=True)
    p.add_argument("--pin-file", required=True)
    p.add_argument("--label")
    p.add_argument("--kek", action="append", default=[], metavar="LABEL=HEXFILE")
    p.add_argument("--user", help="give the token's files to this user")
    a = p.parse_args(argv)
    keks = {}
    for item in a.kek:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            p.error("--kek wants LABEL=HEXFILE")
        keks[label] = path
    try:
        token = make(a.tool, a.kind, a.dir, a.pin_file, keks, a.label)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    if a.user:
        token.hand_to(a.user)
    print("\n".join(["  pkcs11:"] + token.pkcs11_yaml(os.path.abspath(a.pin_file))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
