"""Independent LoRaWAN 1.0.x / 1.1 join reference, for cross-checking lorakeep.

Why this exists: lorakeep computes join crypto through PKCS#11 (SoftHSM in
tests). Checking it only against code we wrote ourselves would let a shared
misreading of the spec pass unnoticed, so this module is built solely on
python3-cryptography primitives (AES-ECB, AES-CMAC, RFC 3394 key wrap) and the
spec text, and is itself validated against published vectors (test_ref.py).

Conventions (same as LoRaWAN Backend Interfaces JSON):
  * Identifiers handed to this module -- JoinEUI, DevEUI, NetID, DevAddr,
    JoinNonce, DevNonce -- are `bytes` in big-endian *display* order, i.e.
    what bytes.fromhex("...") gives for the hex a human reads. The air
    interface is little-endian, so every builder reverses them via `_air`.
    Keeping the reversal in one helper is deliberate: byte order is the
    classic bug here, and a single place to get it right is easier to audit.
  * RJcount0/RJcount1 are plain ints (they are counters, not identifiers).
  * PHYPayloads and MIC inputs are on-air bytes.

LoRaWAN 1.1 with OptNeg=0 (a 1.1 device joining through a 1.0 network):
  LoRaWAN 1.1 spec section 6.2.3 ("Join-accept message") says that when the
  OptNeg bit is unset the device reverts to 1.0 behaviour and the session keys
  are derived from the **NwkKey**, 1.0-style with NetID:
      AppSKey     = aes128_encrypt(NwkKey, 0x02 | JoinNonce | NetID | DevNonce | pad16)
      FNwkSIntKey = aes128_encrypt(NwkKey, 0x01 | JoinNonce | NetID | DevNonce | pad16)
      SNwkSIntKey = NwkSEncKey = FNwkSIntKey        (i.e. the 1.0 NwkSKey)
  and the join-accept MIC is the 1.0 form keyed with NwkKey:
      cmac = aes128_cmac(NwkKey, MHDR | JoinNonce | NetID | DevAddr | DLSettings | RxDelay | CFList)
  The join-accept is encrypted with NwkKey (every join-request-triggered
  accept in 1.1 is). The AppKey is NOT used at all in that mode.
  Sources: the 1.1 spec text as mirrored (Chinese translation) in
  github.com/alvinasa/LoRaWAN-v1.1 zhong-duan-she-bei-ji-huo.md, section
  6.2.3; and ChirpStack's own join handling, chirpstack/src/uplink/join.rs
  (construct_join_accept_and_set_keys: when opt_neg is false it signs the
  accept with nwk_key and derives app_s_key from device_keys.nwk_key).
  The Semtech LR1121 user manual (section 11.3) likewise shows
  FNwkSIntKey = derive(NwkKey, 0x01 | JoinNonce | NetID | DevNonce | pad16).

Rejoin-accepts: JoinReqType is the rejoin type (0/1/2), the MIC key is
JSIntKey, encryption uses JSEncKey, and RJcount0 (types 0/2) or RJcount1
(type 1) takes DevNonce's place -- same 2 little-endian bytes -- both in the
MIC input and in the session-key derivation.
"""

from cryptography.hazmat.primitives import cmac as _cmac
from cryptography.hazmat.primitives import keywrap as _keywrap
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MHDR_JOIN_REQUEST = 0x00
MHDR_JOIN_ACCEPT = 0x20
MHDR_REJOIN_REQUEST = 0xC0
JOIN_REQ_TYPE_JOIN = 0xFF  # JoinReqType for a join-request; rejoins use their type 0/1/2

# Names of the session keys a Join Server hands out, per mode.
KEYS_10 = ("NwkSKey", "AppSKey")
KEYS_11 = ("FNwkSIntKey", "SNwkSIntKey", "NwkSEncKey", "AppSKey")


# --------------------------------------------------------------------------
# Primitives (thin wrappers so every caller uses the same, audited calls)
# --------------------------------------------------------------------------

def aes_encrypt(key: bytes, data: bytes) -> bytes:
    """AES-ECB encrypt; len(data) must be a multiple of 16."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    """AES-ECB decrypt; len(data) must be a multiple of 16."""
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def aes_cmac(key: bytes, msg: bytes) -> bytes:
    """Full 16-byte AES-CMAC (RFC 4493)."""
    c = _cmac.CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def mic(key: bytes, msg: bytes) -> bytes:
    """LoRaWAN MIC = first 4 bytes of the AES-CMAC."""
    return aes_cmac(key, msg)[:4]


def wrap(kek: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap (default IV), as Backend Interfaces KeyEnvelope uses."""
    return _keywrap.aes_key_wrap(kek, key)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """RFC 3394 unwrap; raises cryptography's InvalidUnwrap on integrity failure."""
    return _keywrap.aes_key_unwrap(kek, wrapped)


def _air(display: bytes) -> bytes:
    """Big-endian display bytes -> little-endian on-air bytes."""
    return bytes(reversed(display))


def _pad16(block: bytes) -> bytes:
    assert len(block) <= 16
    return block + bytes(16 - len(block))


def _check_len(name: str, value: bytes, n: int) -> None:
    # Catch a wrong-width argument here rather than as a silently wrong key.
    if len(value) != n:
        raise ValueError(f"{name} must be {n} bytes, got {len(value)}")


def rjcount_display(count: int) -> bytes:
    """RJcount as 2 display (BE) bytes, so it can stand in for a DevNonce."""
    return count.to_bytes(2, "big")


# --------------------------------------------------------------------------
# Join-request / rejoin-request (device side; the JS verifies these)
# --------------------------------------------------------------------------

def join_request(key: bytes, join_eui: bytes, dev_eui: bytes, dev_nonce: bytes) -> bytes:
    """Encode a join-request PHYPayload with its MIC.

    key is AppKey for 1.0.x devices and NwkKey for 1.1 devices.
    """
    _check_len("JoinEUI", join_eui, 8)
    _check_len("DevEUI", dev_eui, 8)
    _check_len("DevNonce", dev_nonce, 2)
    body = bytes([MHDR_JOIN_REQUEST]) + _air(join_eui) + _air(dev_eui) + _air(dev_nonce)
    return body + mic(key, body)


def parse_join_request(phy: bytes) -> dict:
    """Split a join-request into display-order fields (no MIC check)."""
    if len(phy) != 23 or phy[0] != MHDR_JOIN_REQUEST:
        raise ValueError("not a 23-byte join-request")
    return {
        "join_eui": _air(phy[1:9]),
        "dev_eui": _air(phy[9:17]),
        "dev_nonce": _air(phy[17:19]),
        "mic": phy[19:23],
    }


def verify_join_request(key: bytes, phy: bytes) -> bool:
    return len(phy) == 23 and mic(key, phy[:19]) == phy[19:]


def rejoin_request(rejoin_type: int, key: bytes, dev_eui: bytes, rjcount: int,
                   net_id: bytes = None, join_eui: bytes = None) -> bytes:
    """Encode a rejoin-request PHYPayload with its MIC.

    Type 1: C0 | 01 | JoinEUI | DevEUI | RJcount1, MIC key JSIntKey (checked by the JS).
    Types 0/2: C0 | type | NetID | DevEUI | RJcount0, MIC key SNwkSIntKey
    (checked by the Network Server -- the JS cannot verify it; only used to
    build realistic frames and to check published vectors).
    """
    _check_len("DevEUI", dev_eui, 8)
    if rejoin_type == 1:
        _check_len("JoinEUI", join_eui, 8)
        ident = _air(join_eui)
    elif rejoin_type in (0, 2):
        _check_len("NetID", net_id, 3)
        ident = _air(net_id)
    else:
        raise ValueError(f"bad rejoin type {rejoin_type}")
    body = (bytes([MHDR_REJOIN_REQUEST, rejoin_type]) + ident + _air(dev_eui)
            + rjcount.to_bytes(2, "little"))
    return body + mic(key, body)


def parse_rejoin_request(phy: bytes) -> dict:
    """Split a rejoin-request into fields (display order; rjcount as int)."""
    if len(phy) < 2 or phy[0] != MHDR_REJOIN_REQUEST:
        raise ValueError("not a rejoin-request")
    t = phy[1]
    if t == 1:
        if len(phy) != 24:
            raise ValueError("rejoin type 1 must be 24 bytes")
        return {"rejoin_type": 1, "join_eui": _air(phy[2:10]), "dev_eui": _air(phy[10:18]),
                "rjcount": int.from_bytes(phy[18:20], "little"), "mic": phy[20:24]}
    if t in (0, 2):
        if len(phy) != 19:
            raise ValueError("rejoin type 0/2 must be 19 bytes")
        return {"rejoin_type": t, "net_id": _air(phy[2:5]), "dev_eui": _air(phy[5:13]),
                "rjcount": int.from_bytes(phy[13:15], "little"), "mic": phy[15:19]}
    raise ValueError(f"bad rejoin type {t}")


def verify_rejoin_request(key: bytes, phy: bytes) -> bool:
    return len(phy) > 4 and mic(key, phy[:-4]) == phy[-4:]


# --------------------------------------------------------------------------
# Key derivation
# --------------------------------------------------------------------------

def derive_js_keys(nwk_key: bytes, dev_eui: bytes) -> dict:
    """LoRaWAN 1.1 JSIntKey (0x06) and JSEncKey (0x05), from NwkKey and DevEUI."""
    _check_len("DevEUI", dev_eui, 8)
    return {
        "JSIntKey": aes_encrypt(nwk_key, _pad16(b"\x06" + _air(dev_eui))),
        "JSEncKey": aes_encrypt(nwk_key, _pad16(b"\x05" + _air(dev_eui))),
    }


def derive_session_keys_10(root_key: bytes, join_nonce: bytes, net_id: bytes,
                           dev_nonce: bytes) -> dict:
    """1.0-style NwkSKey (0x01) / AppSKey (0x02): root | JoinNonce | NetID | DevNonce.

    root_key is the AppKey for 1.0.x and the NwkKey for 1.1 with OptNeg=0
    (see module docstring).
    """
    _check_len("JoinNonce", join_nonce, 3)
    _check_len("NetID", net_id, 3)
    _check_len("DevNonce", dev_nonce, 2)
    tail = _air(join_nonce) + _air(net_id) + _air(dev_nonce)
    return {
        "NwkSKey": aes_encrypt(root_key, _pad16(b"\x01" + tail)),
        "AppSKey": aes_encrypt(root_key, _pad16(b"\x02" + tail)),
    }


def derive_session_keys_11(nwk_key: bytes, app_key: bytes, join_nonce: bytes,
                           join_eui: bytes, dev_nonce: bytes) -> dict:
    """LoRaWAN 1.1 OptNeg=1 session keys: JoinNonce | JoinEUI | DevNonce.

    Network keys come from NwkKey (0x01 F, 0x03 S, 0x04 Enc), AppSKey from
    AppKey (0x02). For a rejoin, pass rjcount_display(RJcount) as dev_nonce.
    """
    _check_len("JoinNonce", join_nonce, 3)
    _check_len("JoinEUI", join_eui, 8)
    _check_len("DevNonce", dev_nonce, 2)
    tail = _air(join_nonce) + _air(join_eui) + _air(dev_nonce)
    return {
        "FNwkSIntKey": aes_encrypt(nwk_key, _pad16(b"\x01" + tail)),
        "SNwkSIntKey": aes_encrypt(nwk_key, _pad16(b"\x03" + tail)),
        "NwkSEncKey": aes_encrypt(nwk_key, _pad16(b"\x04" + tail)),
        "AppSKey": aes_encrypt(app_key, _pad16(b"\x02" + tail)),
    }


# --------------------------------------------------------------------------
# Join-accept
# --------------------------------------------------------------------------

def join_accept_plaintext(join_nonce: bytes, net_id: bytes, dev_addr: bytes,
                          dl_settings: int, rx_delay: int, cf_list: bytes = b"") -> bytes:
    """MHDR | JoinNonce | NetID | DevAddr | DLSettings | RxDelay | [CFList], no MIC."""
    _check_len("JoinNonce", join_nonce, 3)
    _check_len("NetID", net_id, 3)
    _check_len("DevAddr", dev_addr, 4)
    if cf_list:
        _check_len("CFList", cf_list, 16)
    return (bytes([MHDR_JOIN_ACCEPT]) + _air(join_nonce) + _air(net_id) + _air(dev_addr)
            + bytes([dl_settings, rx_delay]) + cf_list)


def join_accept_mic_10(key: bytes, plaintext: bytes) -> bytes:
    """1.0.x (AppKey) and 1.1 OptNeg=0 (NwkKey) join-accept MIC."""
    return mic(key, plaintext)


def join_accept_mic_11(js_int_key: bytes, join_req_type: int, join_eui: bytes,
                       dev_nonce: bytes, plaintext: bytes) -> bytes:
    """1.1 OptNeg=1 MIC: cmac(JSIntKey, JoinReqType | JoinEUI | DevNonce | MHDR | ...)."""
    _check_len("JoinEUI", join_eui, 8)
    _check_len("DevNonce", dev_nonce, 2)
    return mic(js_int_key, bytes([join_req_type]) + _air(join_eui) + _air(dev_nonce) + plaintext)


def encrypt_join_accept(key: bytes, plaintext_with_mic: bytes) -> bytes:
    """Network side: AES-ECB *decrypt* everything after MHDR (16 or 32 bytes).

    The spec uses decrypt so that the device only needs AES encrypt.
    """
    rest = plaintext_with_mic[1:]
    if len(rest) not in (16, 32):
        raise ValueError(f"join-accept body must be 16 or 32 bytes, got {len(rest)}")
    return plaintext_with_mic[:1] + aes_decrypt(key, rest)


def decrypt_join_accept(key: bytes, phy: bytes) -> bytes:
    """Device side: AES-ECB *encrypt* after MHDR recovers the plaintext + MIC."""
    rest = phy[1:]
    if len(rest) not in (16, 32):
        raise ValueError(f"join-accept body must be 16 or 32 bytes, got {len(rest)}")
    return phy[:1] + aes_encrypt(key, rest)


# --------------------------------------------------------------------------
# What a Join Server answers (the thing lorakeep must reproduce)
# --------------------------------------------------------------------------

def js_answer(mac_version: str, app_key: bytes, nwk_key: bytes, phy_payload: bytes,
              join_eui: bytes, dev_eui: bytes, join_nonce: bytes, net_id: bytes,
              dev_addr: bytes, dl_settings: int, rx_delay: int, cf_list: bytes = b"") -> dict:
    """Compute a Join Server's answer to a join- or rejoin-request.

    Returns {"mic_ok": bool, "join_accept": bytes, "keys": {name: plain key}}
    ("join_accept"/"keys" only when mic_ok). Keys are returned unwrapped;
    wrapping is the caller's business (it depends on the KEKs).

    For rejoin types 0/2 the MIC is keyed with SNwkSIntKey, which only the
    Network Server holds; a JS receives such a rejoin only after the NS has
    verified it, so mic_ok is True for them by definition.
    """
    is_11 = mac_version.startswith("1.1")
    if phy_payload[:1] == bytes([MHDR_REJOIN_REQUEST]):
        if not is_11:
            raise ValueError("rejoin-requests exist only in LoRaWAN 1.1")
        rj = parse_rejoin_request(phy_payload)
        js = derive_js_keys(nwk_key, dev_eui)
        if rj["rejoin_type"] == 1 and not verify_rejoin_request(js["JSIntKey"], phy_payload):
            return {"mic_ok": False}
        nonce = rjcount_display(rj["rjcount"])
        pt = join_accept_plaintext(join_nonce, net_id, dev_addr, dl_settings, rx_delay, cf_list)
        m = join_accept_mic_11(js["JSIntKey"], rj["rejoin_type"], join_eui, nonce, pt)
        return {
            "mic_ok": True,
            "join_accept": encrypt_join_accept(js["JSEncKey"], pt + m),
            "keys": derive_session_keys_11(nwk_key, app_key, join_nonce, join_eui, nonce),
        }

    root = nwk_key if is_11 else app_key  # join-request MIC and accept encryption key
    if not verify_join_request(root, phy_payload):
        return {"mic_ok": False}
    dev_nonce = parse_join_request(phy_payload)["dev_nonce"]
    pt = join_accept_plaintext(join_nonce, net_id, dev_addr, dl_settings, rx_delay, cf_list)
    if is_11 and dl_settings & 0x80:  # OptNeg=1
        js = derive_js_keys(nwk_key, dev_eui)
        m = join_accept_mic_11(js["JSIntKey"], JOIN_REQ_TYPE_JOIN, join_eui, dev_nonce, pt)
        keys = derive_session_keys_11(nwk_key, app_key, join_nonce, join_eui, dev_nonce)
    else:  # 1.0.x (root = AppKey) or 1.1 OptNeg=0 (root = NwkKey, AppKey unused)
        m = join_accept_mic_10(root, pt)
        keys = derive_session_keys_10(root, join_nonce, net_id, dev_nonce)
    return {"mic_ok": True, "join_accept": encrypt_join_accept(root, pt + m), "keys": keys}


def device_open_join_accept(mac_version: str, app_key: bytes, nwk_key: bytes,
                            phy: bytes, join_eui: bytes, dev_nonce: bytes,
                            join_req_type: int = JOIN_REQ_TYPE_JOIN,
                            dev_eui: bytes = None) -> dict:
    """Decrypt and MIC-check a join-accept the way the end-device does.

    This deliberately follows the device's path (AES *encrypt* to decrypt,
    OptNeg read from the decrypted DLSettings) rather than the JS's, so it is
    a second, differently-shaped check of the Join Server's output.
    dev_nonce is the DevNonce, or rjcount_display(RJcount) for a rejoin.
    Returns {"mic_ok", "plaintext" (no MIC), "opt_neg"}.
    """
    is_11 = mac_version.startswith("1.1")
    if join_req_type != JOIN_REQ_TYPE_JOIN:
        key = derive_js_keys(nwk_key, dev_eui)["JSEncKey"]
    else:
        key = nwk_key if is_11 else app_key
    full = decrypt_join_accept(key, phy)
    pt, got = full[:-4], full[-4:]
    opt_neg = is_11 and bool(pt[11] & 0x80)  # DLSettings is byte 11 (1+3+3+4)
    if opt_neg:
        want = join_accept_mic_11(derive_js_keys(nwk_key, dev_eui)["JSIntKey"],
                                  join_req_type, join_eui, dev_nonce, pt)
    else:
        want = join_accept_mic_10(key, pt)
    return {"mic_ok": want == got, "plaintext": pt, "opt_neg": opt_neg}
