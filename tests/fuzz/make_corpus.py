#!/usr/bin/python3
"""Writes the fuzz seed corpus (tests/fuzz/corpus/): a few valid inputs for fuzz_frames.

    /usr/bin/python3 tests/fuzz/make_corpus.py

Protobuf is encoded by hand (Debian's python3 has no protobuf module by default); the
field numbers are those of schemas/lorakeep/crypto/v1/crypto.proto. Deterministic: the
same files every run, so the corpus only changes when this script does.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def field_bytes(num: int, value: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(value)) + value


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def b(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


JOIN_REQUEST = b("00" + "0807060504030201" + "1817161514131211" + "3412" + "aabbccdd")
REJOIN_0 = b("c000" + "030201" + "1817161514131211" + "0100" + "aabbccdd")
REJOIN_1 = b("c001" + "0807060504030201" + "1817161514131211" + "0100" + "aabbccdd")
ACCEPT_17 = b("20" + "010203" + "040506" + "0708090a" + "83" + "01" + "11223344")
ACCEPT_33 = ACCEPT_17[:13] + bytes(range(16)) + ACCEPT_17[13:]


def accept_fields() -> bytes:
    return (field_varint(1, 0x123456) + field_bytes(2, b("000013")) +
            field_bytes(3, b("26011234")) + field_varint(4, 0x80) + field_varint(5, 1))


def join_request_message() -> bytes:
    root = field_bytes(1, field_bytes(1, bytes(24)) + field_bytes(2, bytes(24)))
    op = (field_bytes(1, b"1.1") + field_bytes(2, JOIN_REQUEST) +
          field_bytes(3, b("1112131415161718")) + field_bytes(4, root) +
          field_bytes(5, accept_fields()) + field_bytes(6, field_bytes(1, b"ns-000013")) +
          field_bytes(7, field_bytes(1, b"as-1")) + field_varint(8, 1))
    return (field_varint(1, 1) + field_varint(2, 7) + field_varint(3, 2000) +
            field_bytes(4, b"ns:000013") + field_bytes(10, op))


def rejoin_request_message() -> bytes:
    root = field_bytes(2, field_bytes(1, b"P-1") + field_bytes(2, b("0102")))
    op = (field_bytes(1, REJOIN_1) + field_bytes(2, b("0102030405060708")) +
          field_bytes(4, root) + field_bytes(5, accept_fields() + field_bytes(6, bytes(16))))
    return field_varint(1, 1) + field_varint(2, 8) + field_bytes(11, op)


def simple_request(num: int, request_id: int) -> bytes:
    return field_varint(1, 1) + field_varint(2, request_id) + field_bytes(num, b"")


def join_response() -> bytes:
    env = field_bytes(1, b"ns-000013") + field_bytes(2, bytes(24))
    result = (field_bytes(1, bytes(33)) + field_bytes(3, env) + field_bytes(4, env) +
              field_bytes(5, env) + field_bytes(6, env) + field_bytes(7, bytes(24)) +
              field_varint(8, 12) + field_varint(9, 7))
    return field_varint(1, 7) + field_bytes(10, result)


def error_response() -> bytes:
    return field_varint(1, 9) + field_varint(2, 2) + field_bytes(3, b"the MIC does not verify")


SEEDS = {
    "frame-join-request": frame(join_request_message()),
    "frame-rejoin-request": frame(rejoin_request_message()),
    "frames-info-stats": frame(simple_request(14, 1)) + frame(simple_request(15, 2)),
    "frame-join-response": frame(join_response()),
    "frame-error-response": frame(error_response()),
    "payload-join-request": join_request_message(),
    "lorawan-join-request": JOIN_REQUEST,
    "lorawan-rejoin-type0": REJOIN_0,
    "lorawan-rejoin-type1": REJOIN_1,
    "lorawan-join-accept-17": ACCEPT_17,
    "lorawan-join-accept-33": ACCEPT_33,
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
