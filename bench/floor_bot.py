"""The floor: a minimal matrix-nio bot, the speed any bot on this homeserver can reach.

It does what a bare nio bot does and nothing more: log in, sync, join rooms it
is invited to, and answer every ``!`` message in the room as a reply notice
(``!ping`` with ``pong``, anything else with its own text). ``!rundruf <text>``
makes it send ``@room <text>`` into each room of a list, one after the other —
the bare client that dorfbot's push alert fan-out is measured against.

It shares nothing with dorfbot except matrix-nio: no database, no encryption,
no command table. It uses the same sync filter as dorfbot (100 timeline events
per room) so that both see the same events per sync; it does not back-paginate
a ``limited`` timeline, so a burst can make it miss commands, which the
benchmark counts.

Run: ``python bench/floor_bot.py HOMESERVER USER_ID PASSWORD [--fanout-rooms FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, InviteMemberEvent, MatrixRoom, RoomMessageText

SYNC_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "room": {"timeline": {"limit": 100}, "ephemeral": {"types": []}},
}


async def main(args: argparse.Namespace) -> None:
    client = AsyncClient(
        args.homeserver,
        args.user_id,
        config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
    )
    fanout_rooms: list[str] = args.rooms
    await client.login(args.password, device_name="floor-bot")
    # Skip whatever happened before the start, as any bot does.
    await client.sync(timeout=0, full_state=True, sync_filter=SYNC_FILTER)

    async def on_message(room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == client.user_id or not event.body.startswith("!"):
            return
        if event.body.startswith("!rundruf"):
            text = event.body[len("!rundruf") :].strip()
            for room_id in fanout_rooms:
                await client.room_send(
                    room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": f"@room {text}", "m.mentions": {"room": True}},
                )
            return
        reply = "pong" if event.body.strip() == "!ping" else event.body
        await client.room_send(
            room.room_id,
            "m.room.message",
            {
                "msgtype": "m.notice",
                "body": reply,
                "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
            },
        )

    async def on_invite(room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == client.user_id and event.membership == "invite":
            await client.join(room.room_id)

    client.add_event_callback(on_message, RoomMessageText)
    client.add_event_callback(on_invite, InviteMemberEvent)
    for room_id in list(client.invited_rooms):  # invites that came before the callbacks
        await client.join(room_id)
    print("ready", flush=True)
    task = asyncio.create_task(client.sync_forever(timeout=30_000, sync_filter=SYNC_FILTER))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("homeserver")
    parser.add_argument("user_id")
    parser.add_argument("password")
    parser.add_argument("--fanout-rooms", help="JSON file with the room IDs for !rundruf")
    arguments = parser.parse_args()
    arguments.rooms = (
        json.loads(Path(arguments.fanout_rooms).read_text()) if arguments.fanout_rooms else []
    )
    asyncio.run(main(arguments))
    sys.exit(0)
