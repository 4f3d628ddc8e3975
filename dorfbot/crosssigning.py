"""Cross-signing: the bot's device is signed by the bot's own keys.

On the first start with a password the bot creates its master, self-signing and
user-signing keys, uploads them (``/keys/device_signing/upload``, with
user-interactive auth by password) and signs its own device
(``/keys/signatures/upload``), so clients no longer show its messages as from
a device "not verified by its owner". The private keys live in
``data/crypto/cross_signing.json`` (mode 0600) and are reused: each start signs
the current device again, so a new device (after a lost crypto store) is signed
too. Without a password and without stored keys the bot logs once how to enable
it and carries on. Keys and signatures come from signedjson/PyNaCl; the
requests go through :class:`dorfbot.matrix.Matrix` (``upload_signing_keys``,
``own_device_keys``, ``upload_signatures``), which owns every API path.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from signedjson.key import (
    decode_signing_key_base64,
    encode_signing_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import sign_json
from signedjson.types import SigningKey

from dorfbot.matrix import Matrix

log = logging.getLogger(__name__)

KEYS_FILE = "cross_signing.json"
USAGES = ("master", "self_signing", "user_signing")


def _new_key() -> SigningKey:
    key = generate_signing_key("0")
    key.version = encode_verify_key_base64(get_verify_key(key))  # key ID is the public key
    return key


def _load(path: Path) -> dict[str, SigningKey] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys = {u: decode_signing_key_base64("ed25519", "0", data[u]) for u in USAGES}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for key in keys.values():
        key.version = encode_verify_key_base64(get_verify_key(key))
    return keys


def _save(path: Path, keys: dict[str, SigningKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({u: encode_signing_key_base64(k) for u, k in keys.items()}, fh)
    tmp.replace(path)


def _public(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "usage": [usage],
        "keys": {f"ed25519:{key.version}": key.version},
    }


async def ensure_cross_signed(matrix: Matrix, data_dir: Path, password: str | None) -> bool:
    """Make sure the bot's keys exist on the server and its device is signed; True if so."""
    user_id, device_id = matrix.user_id, str(matrix.client.device_id)
    path = data_dir / "crypto" / KEYS_FILE
    keys = _load(path)
    if keys is None:
        if not password:
            log.warning(
                "The bot's device is not cross-signed, so clients mark its messages as "
                "from an unverified device. To fix this, start the bot once with its "
                "password (DORFBOT_PASSWORD); it then creates and keeps its signing keys "
                "in %s.",
                path,
            )
            return False
        keys = {u: _new_key() for u in USAGES}
        master = keys["master"]
        body: dict[str, Any] = {
            "master_key": _public(user_id, "master", master),
            "self_signing_key": sign_json(
                _public(user_id, "self_signing", keys["self_signing"]), user_id, master
            ),
            "user_signing_key": sign_json(
                _public(user_id, "user_signing", keys["user_signing"]), user_id, master
            ),
        }
        await matrix.upload_signing_keys(body, password)
        _save(path, keys)
        log.info("created and uploaded the bot's cross-signing keys")
    device = await matrix.own_device_keys()
    if device is None:
        log.warning("device %s has no uploaded keys yet; not cross-signed", device_id)
        return False
    device.pop("unsigned", None)
    failures = await matrix.upload_signatures(
        {device_id: sign_json(device, user_id, keys["self_signing"])}
    )
    if failures:
        log.warning("signing device %s failed: %s", device_id, failures)
        return False
    log.info("device %s is cross-signed", device_id)
    return True
