"""The README's first command: ``dorfbot demo`` comes up, answers, and leaves nothing behind.

It runs the installed console script from a working directory outside the
checkout, as a user's shell would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from dorfbot.testing.commandline import installed_command, user_env
from dorfbot.testing.resident import body_of

pytestmark = pytest.mark.slow


async def test_demo_runs_answers_and_stops_cleanly(tmp_path: Path) -> None:
    from nio import AsyncClient

    work = tmp_path / "cwd"
    work.mkdir()
    proc = await asyncio.create_subprocess_exec(
        installed_command(),
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        cwd=work,
        env=user_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = ""
    try:
        async with asyncio.timeout(120):
            while "Press Ctrl-C" not in output:
                line = await proc.stdout.readline()
                assert line, f"demo ended early:\n{output[-3000:]}"
                output += line.decode()
        url = re.search(r"Homeserver: (http://127\.0\.0\.1:\d+)", output)
        assert url, output
        client = AsyncClient(url.group(1), "@anna:localhost")
        try:
            await client.login("dorfbot-demo")
            sync = await client.sync(timeout=0)
            rooms = {r.display_name: rid for rid, r in client.rooms.items()}
            market = next(rid for name, rid in rooms.items() if "Marktplatz" in name)
            sent = await client.room_send(
                market, "m.room.message", {"msgtype": "m.text", "body": "!angebote"}
            )
            reply = None
            since = sync.next_batch
            for _ in range(30):
                resp = await client.sync(timeout=1000, since=since)
                since = resp.next_batch
                for event in (
                    resp.rooms.join.get(market, None).timeline.events
                    if market in resp.rooms.join
                    else []
                ):
                    relates = event.source.get("content", {}).get("m.relates_to", {})
                    if relates.get("m.in_reply_to", {}).get("event_id") == sent.event_id:
                        reply = event.source
                if reply:
                    break
            assert reply, "the demo bot did not answer !angebote"
            assert "Rasenmäher" in (body_of(reply) or "")  # the seeded sample offer
        finally:
            await client.close()
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert "nothing is left running" in (output + rest.decode())
    assert proc.returncode == 0
