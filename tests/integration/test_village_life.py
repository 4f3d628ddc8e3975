"""Welcome, links and info box, privacy, backup and metrics on a real homeserver."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dorfbot.testing.resident import body_of
from dorfbot.testing.village import World


def from_bot(world: World, predicate=lambda e: True):  # type: ignore[no-untyped-def]
    return lambda e: e.get("sender") == world.bot_user_id and predicate(e)


async def test_new_member_is_welcomed_once_per_village(world: World) -> None:
    newcomer = await world.new_resident()
    # the greeting lands in whichever room the bot saw the first join in
    rooms = [r for k, r in world.village.rooms.items() if k != "moderation"]

    def greeting(e: dict) -> bool:
        return e.get("sender") == world.bot_user_id and "Willkommen" in (body_of(e) or "")

    def greeted_in(room: str) -> list[dict]:
        return [e for e in newcomer.events(room) if greeting(e)]

    waits = [asyncio.create_task(newcomer.wait_for(r, greeting, 20)) for r in rooms]
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    welcome = done.pop().result()
    assert sum(len(greeted_in(r)) for r in rooms) == 1
    # it pushes to the newcomer as a mention; to the others it is a normal message
    assert welcome["content"]["m.mentions"] == {"user_ids": [newcomer.user_id]}
    assert (await newcomer.notifications()).get(welcome["event_id"]) is True
    assert (await world.resident.notifications()).get(welcome["event_id"]) is not True
    # leave and rejoin, and restart the bot: no second greeting (the bot handles a
    # room's events in order, so the pong comes after anything the join caused)
    room = world.room("chat")
    await newcomer.leave(room)
    await world.restart_bot()
    await world.admin.invite(room, newcomer.user_id)
    await newcomer.wait_joined(room)
    ping = await newcomer.command(room, "!ping")
    assert body_of(ping) == "pong"
    assert sum(len(greeted_in(r)) for r in rooms) == 1


async def test_links_and_infobox_pin_replaces(world: World) -> None:
    org = world.village.organizer
    room = world.room("chat")
    refused = await world.resident.command(room, "!link Gemeinde https://example.org")
    assert "dürfen nur" in (body_of(refused) or "")
    bad = await org.command(room, "!link Böse javascript:alert(1)")
    assert "https://" in (body_of(bad) or "")
    added = await org.command(room, "!link Gemeinde <b>Seite</b> https://example.org/rathaus")
    assert "Link 1" in (body_of(added) or "")
    first = await org.command(room, "!infobox Rathaus: Mo–Fr 8–12 Uhr")
    assert "angeheftet" in (body_of(first) or "")
    ann = world.room("announcements")
    pins = await world.resident.get_json(
        f"/_matrix/client/v3/rooms/{ann}/state/m.room.pinned_events"
    )
    assert len(pins["pinned"]) == 1
    old_pin = pins["pinned"][0]
    await org.command(room, "!infobox Rathaus: Di 14–18 Uhr")
    pins = await world.resident.get_json(
        f"/_matrix/client/v3/rooms/{ann}/state/m.room.pinned_events"
    )
    assert len(pins["pinned"]) == 1 and pins["pinned"][0] != old_pin
    listing = await world.resident.command(room, "!links")
    content = listing["content"]
    assert "Di 14–18 Uhr" in content["body"] and "https://example.org/rathaus" in content["body"]
    assert "<b>Seite</b>" not in content["formatted_body"]
    assert "&lt;b&gt;Seite&lt;/b&gt;" in content["formatted_body"]
    removed = await org.command(room, "!linkloeschen 1")
    assert "gelöscht" in (body_of(removed) or "")


async def _download_export(world: World, person) -> dict:  # type: ignore[no-untyped-def]
    reply = await person.command(world.room("chat"), "!meinedaten")
    assert "Direktnachricht" in (body_of(reply) or "")
    for _ in range(150):
        for room_id in person.joined_rooms:
            for event in person.events(room_id):
                content = event.get("content", {})
                if event.get("sender") == world.bot_user_id and content.get("msgtype") == "m.file":
                    return json.loads(await person.download_file(content))
        await asyncio.sleep(0.2)
    raise AssertionError("no export file arrived")


async def test_mydata_and_forgetme(world: World) -> None:
    person = await world.new_resident()
    other = world.resident
    await asyncio.sleep(1)  # the welcome claim is written
    export = await _download_export(world, person)
    assert export["user_id"] == person.user_id
    assert "welcome" in export
    assert other.user_id not in json.dumps(export)
    room = world.room("chat")
    blocked = await world.moderator.command(world.room("moderation"), f"!sperren {person.user_id}")
    assert "nichts mehr" in (body_of(blocked) or "")
    ask = await person.command(room, "!vergessen")
    assert "vergessen ja" in (body_of(ask) or "")
    done = await person.command(room, "!vergessen ja")
    assert "gelöscht" in (body_of(done) or "")
    assert world.bot is not None
    db = world.bot.db
    for table in await db.tables():
        columns = [r[1] for r in await db.fetchall(f"PRAGMA table_info({table})")]
        for column in columns:
            hit = await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE ?",
                (f"%{person.user_id}%",),
            )
            assert hit == 0, f"{table}.{column} still holds the user"
    # erasure is no way around a block: it survives under a pseudonym
    again = await person.command(world.room("marketplace"), "!biete Neuanfang #garten")
    assert "gesperrt" in (body_of(again) or "")


async def test_backup_while_writing_and_metrics(world: World, tmp_path: Path) -> None:
    assert world.bot is not None
    room = world.room("chat")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(world.raw_config))
    writers = asyncio.gather(
        *(world.resident.command(room, f"!ping {i}", timeout=30) for i in range(30))
    )
    backup = tmp_path / "backup.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dorfbot",
        "backup",
        "-c",
        str(config_path),
        str(backup),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    await writers
    assert proc.returncode == 0, err.decode()
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] >= 3

    port = world.bot.web.port
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    pings = [
        s
        for s in families["dorfbot_commands"].samples
        if s.name == "dorfbot_commands_total" and s.labels == {"command": "ping", "outcome": "ok"}
    ]
    assert pings and pings[0].value >= 30
    assert "dorfbot_command_seconds" in families
