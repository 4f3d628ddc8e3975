"""``dorfbot setup`` against a real homeserver: space, rooms, power levels, idempotence."""

from __future__ import annotations

import uuid
from pathlib import Path

from dorfbot.config import parse_config
from dorfbot.setup import VillageSetup, config_snippet, run_setup
from dorfbot.testing.homeserver import Homeserver
from dorfbot.testing.resident import Resident


async def test_setup_creates_and_repairs_without_duplicates(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    bot_id = homeserver.register(f"setupbot-{tag}", "pw")
    mod = await Resident.create(homeserver, f"setupmod-{tag}")
    raw = {
        "homeserver": homeserver.url,
        "user_id": bot_id,
        "password": "pw",
        "database": str(tmp_path / "data" / "db.sqlite"),
        "villages": [
            {
                "id": f"dorf-{tag}",
                "name": "Setupdorf",
                "moderators": [mod.user_id],
                "thematic_rooms": ["Senioren"],
            }
        ],
    }
    config = parse_config(raw, base_dir=tmp_path, env={}, require_rooms=False)
    first = await run_setup(config)
    rooms = first[f"dorf-{tag}"]
    assert set(rooms) == {"marketplace", "calendar", "announcements", "moderation", "chat", "space"}
    assert len(rooms["chat"]) == 2  # Plausch + Senioren
    assert "marketplace: " in config_snippet(first)

    bot = await Resident.create(homeserver, f"setupbot-{tag}", "pw", register=False)
    try:

        async def state(room: str, kind: str, key: str = "") -> dict:
            return await bot.get_json(f"/_matrix/client/v3/rooms/{room}/state/{kind}/{key}")

        create = await state(rooms["space"], "m.room.create")
        assert create.get("type") == "m.space"
        village_rooms = [
            rooms[k] for k in ("marketplace", "calendar", "announcements", "moderation")
        ] + rooms["chat"]
        for room in village_rooms:
            assert await state(rooms["space"], "m.space.child", room)
            levels = await state(room, "m.room.power_levels")
            assert levels["users"][mod.user_id] == 50
            assert levels["notifications"]["room"] == 50
        announcements = await state(rooms["announcements"], "m.room.power_levels")
        assert announcements["events_default"] == 50
        assert (await state(rooms["marketplace"], "m.room.power_levels"))["events_default"] == 0
        assert (await state(rooms["moderation"], "m.room.join_rules"))["join_rule"] == "invite"
        assert (await state(rooms["marketplace"], "m.room.join_rules"))["join_rule"] == "public"
        assert (await state(rooms["moderation"], "m.room.encryption"))["algorithm"]
        await mod.wait_joined(rooms["moderation"])  # invited (and auto-joined)

        # break something, run again: nothing new, the damage repaired
        levels = await state(rooms["calendar"], "m.room.power_levels")
        levels["users"].pop(mod.user_id)
        await bot.put_state(rooms["calendar"], "m.room.power_levels", levels)
        second = await run_setup(config)
        assert second == first
        repaired = await state(rooms["calendar"], "m.room.power_levels")
        assert repaired["users"][mod.user_id] == 50
        joined = await bot.get_json("/_matrix/client/v3/joined_rooms")
        assert len(joined["joined_rooms"]) == len(village_rooms) + 1
    finally:
        await bot.close()
        await mod.close()
    assert VillageSetup  # the class is the API the demo uses
