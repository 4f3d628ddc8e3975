"""Encrypted rooms end to end: real Megolm between the bot and e2e-capable residents."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import body_of
from dorfbot.testing.village import World, build_world


@pytest.fixture
async def e2e_world(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[World]:
    world = await build_world(
        homeserver,
        tmp_path,
        residents=1,
        encrypted=("chat", "moderation"),
        config_options={"commands_per_minute": 1000},
    )
    await world.start_bot()
    yield world
    await world.close()


async def test_encrypted_command_reply_and_restart_keeps_device(
    e2e_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = e2e_world
    room = world.room("chat")
    resident = world.resident
    reply = await resident.command(room, "!ping", timeout=30)
    assert body_of(reply) == "pong"
    assert resident.was_encrypted(reply["event_id"])
    assert world.bot is not None
    device = world.bot.matrix.client.device_id

    bot = await world.restart_bot()
    assert bot.matrix.client.device_id == device
    again = await resident.command(room, "!ping", timeout=30)
    assert body_of(again) == "pong" and resident.was_encrypted(again["event_id"])

    # losing the crypto store: logged with recovery steps, a new device, still working
    await world.stop_bot()
    shutil.rmtree(world.workdir / "data" / "crypto")
    with caplog.at_level(logging.ERROR, logger="dorfbot.matrix"):
        bot = await world.start_bot()
    assert "encryption store" in caplog.text and "new device" in caplog.text
    assert bot.matrix.client.device_id != device
    third = await resident.command(room, "!ping", timeout=45)
    assert body_of(third) == "pong" and resident.was_encrypted(third["event_id"])
