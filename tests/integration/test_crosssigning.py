"""The bot's device is cross-signed, as a client's POST /keys/query sees it."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json
from unpaddedbase64 import decode_base64

from dorfbot.testing.resident import Resident
from dorfbot.testing.village import World


def _verify_key(key_object: dict[str, Any]) -> tuple[str, Any]:
    ((key_id, public),) = key_object["keys"].items()
    return key_id, decode_verify_key_bytes(key_id, decode_base64(public))


async def _signed_device(world: World, person: Resident) -> tuple[str, str]:
    """Until the bot's current device is signed by its self-signing key; (device, master)."""
    assert world.bot is not None
    bot, device_id = world.bot_user_id, str(world.bot.matrix.client.device_id)
    for _ in range(150):
        answer = await person.request_json(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {bot: []}}
        )
        master = answer.get("master_keys", {}).get(bot)
        ssk = answer.get("self_signing_keys", {}).get(bot)
        device = answer.get("device_keys", {}).get(bot, {}).get(device_id)
        if master and ssk and device:
            ssk_id, ssk_key = _verify_key(ssk)
            if ssk_id in device.get("signatures", {}).get(bot, {}):
                verify_signed_json(device, bot, ssk_key)  # raises if the signature is wrong
                _, master_key = _verify_key(master)
                verify_signed_json(ssk, bot, master_key)
                return device_id, master["keys"]
        await asyncio.sleep(0.2)
    raise AssertionError(f"device {device_id} of {bot} was not cross-signed")


async def test_the_bots_device_is_cross_signed_across_restarts_and_a_lost_store(
    world: World,
) -> None:
    person = world.resident
    first, master = await _signed_device(world, person)
    keys_file = world.workdir / "data" / "crypto" / "cross_signing.json"
    assert os.stat(keys_file).st_mode & 0o777 == 0o600
    await world.restart_bot()
    again, master_again = await _signed_device(world, person)
    assert (again, master_again) == (first, master)
    await world.stop_bot()
    for entry in (world.workdir / "data" / "crypto").iterdir():
        if entry.name != "cross_signing.json":
            entry.unlink() if entry.is_file() else shutil.rmtree(entry)
    await world.start_bot()
    new, master_new = await _signed_device(world, person)
    assert new != first and master_new == master
