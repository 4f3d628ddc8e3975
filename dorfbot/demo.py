"""``dorfbot demo``: a throwaway homeserver, a demo village and the bot.

Starts Synapse on loopback (the same launcher the tests use), registers the bot,
an admin, a moderator and a few residents with known passwords, builds the
village's rooms, writes a config, starts the bot and seeds a few posts, then
prints how to log in with any Matrix client. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from dorfbot.config import load_config, parse_config
from dorfbot.setup import run_setup

log = logging.getLogger(__name__)

PASSWORD = "dorfbot-demo"
PEOPLE = {
    "admin": "Ortsvorsteherin Ute",
    "moderatorin": "Moderatorin Maria",
    "verein": "Heimatverein",
    "helferin": "Helferin Hanna",
    "anna": "Anna Beispiel",
    "bernd": "Bernd Nachbar",
}
SAMPLES = [
    (
        "anna",
        "marketplace",
        "!biete Rasenmäher zum Ausleihen #garten ortsteil:Nord\n"
        "Benzin-Mäher, gerne gegen einen Kuchen :-)",
    ),
    ("bernd", "marketplace", "!suche Mitfahrt nach Soest am Dienstag #fahrdienst ortsteil:Süd"),
    (
        "verein",
        "calendar",
        "!termin jeden 1. Montag 19:30 Stammtisch Heimatverein wo:Dorfkrug",
    ),
    ("verein", "announcements", "!ankuendigung Die Biotonne wird diese Woche am Freitag geleert."),
    ("verein", "chat", "!link Gemeinde Musterdorf https://www.example.org"),
]


def run_demo(workdir: Path | None = None) -> int:
    """Run the demo until Ctrl-C; returns the process exit code."""
    from dorfbot.testing.homeserver import Homeserver

    temporary = workdir is None
    root = Path(tempfile.mkdtemp(prefix="dorfbot-demo-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    hs = Homeserver(root / "synapse")
    try:
        print("Starting a local homeserver (Synapse) …", flush=True)
        hs.start()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_demo(hs, root))
    finally:
        hs.stop()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
    print("Demo stopped; nothing is left running.")
    return 0


async def _demo(hs: Any, root: Path) -> None:
    from dorfbot.bot import Bot
    from dorfbot.cli import run_until_signal
    from dorfbot.testing.resident import Resident

    bot_id = hs.register("dorfbot", PASSWORD, displayname="Dorfbot")
    people: dict[str, Resident] = {}
    for name, display in PEOPLE.items():
        people[name] = await Resident.create(
            hs, name, PASSWORD, displayname=display, admin=name == "admin"
        )
    admin = people["admin"]
    http_port = _free_port()
    village: dict[str, Any] = {
        "id": "musterdorf",
        "name": "Musterdorf",
        "moderators": [people["moderatorin"].user_id],
        "organizers": [people["verein"].user_id],
        "helpers": [people["helferin"].user_id],
        "categories": [
            "garten",
            "einkauf",
            "fahrdienst",
            "technik",
            "haushalt",
            "betreuung",
            "sonstiges",
        ],
        "districts": ["Nord", "Süd", "Ortsmitte"],
        "thematic_rooms": ["Senioren"],
    }
    raw: dict[str, Any] = {
        "homeserver": hs.url,
        "user_id": bot_id,
        "password": PASSWORD,
        "database": "data/dorfbot.db",
        "http": {"listen": f"127.0.0.1:{http_port}", "public_url": f"http://127.0.0.1:{http_port}"},
        "admins": [admin.user_id],
        "villages": [village],
    }
    # The demo builds its village with the real `dorfbot setup`.
    print("Creating the village space and rooms (dorfbot setup) …", flush=True)
    setup_config = parse_config(raw, base_dir=root, require_rooms=False)
    rooms = (await run_setup(setup_config))["musterdorf"]
    village["rooms"] = {k: v for k, v in rooms.items() if k != "space"}
    for name, person in people.items():
        for kind, room_id in village["rooms"].items():
            for rid in room_id if isinstance(room_id, list) else [room_id]:
                if kind != "moderation":
                    await person.join(rid)
        if name == "moderatorin":
            await person.wait_joined(rooms["moderation"])
    config_path = root / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    bot = Bot(load_config(config_path))
    task = asyncio.create_task(bot.run())
    await bot.wait_ready()
    await asyncio.sleep(1)
    for who, kind, text in SAMPLES:
        room_id = rooms[kind][0] if kind == "chat" else rooms[kind]
        with contextlib.suppress(Exception):
            reply = await people[who].command(room_id, text, timeout=10)
            waiting = re.search(r"Nr\. (\d+)\b.*wartet", reply["content"].get("body", ""))
            if waiting:  # the sample moderator approves the residents' samples
                await people["moderatorin"].command(
                    rooms["moderation"], f"!freigeben {waiting.group(1)}", timeout=10
                )
    for person in people.values():
        await person.close()
    print(_banner(hs.url, config_path), flush=True)
    await run_until_signal(task)


def _banner(url: str, config_path: Path) -> str:
    logins = "\n".join(f"    {name:<12} ({display})" for name, display in PEOPLE.items())
    return f"""
dorfbot demo is running.

  Homeserver: {url}   (in Element: "Edit" the homeserver, enter this URL)
  Password for every account: {PASSWORD}
  Accounts:
{logins}
  The bot: @dorfbot:localhost    Config: {config_path}

  Try in the Marktplatz room:  !hilfe   !angebote   !biete Kinderfahrrad #sonstiges
  As moderatorin in Moderation: !warteschlange   (or react ✅ to a queue message)

Press Ctrl-C to stop; the homeserver and its data are removed.
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
