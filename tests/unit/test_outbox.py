"""The window of sends in flight (dorfbot.outbox): bound, order per lane, rate limits, store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dorfbot.outbox import MIGRATIONS, Outgoing, SendWindow
from dorfbot.storage import Database


class Homeserver:
    """A delivery function that holds each send until released, recording the order."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.gates: dict[str, asyncio.Event] = {}

    async def deliver(self, out: Outgoing) -> str:
        self.started.append(out.txn_id)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        gate = self.gates.setdefault(out.txn_id, asyncio.Event())
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        return "$" + out.txn_id

    def release_all(self) -> None:
        for txn in self.started:
            self.gates.setdefault(txn, asyncio.Event()).set()


def outgoing(txn: str, room: str = "!r", lane: str = "@a") -> Outgoing:
    return Outgoing(
        txn_id=txn,
        room_id=room,
        lane=lane,
        event_type="m.room.message",
        content={"body": txn},
        cause="$cmd",
        future=asyncio.get_running_loop().create_future(),
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_at_most_the_window_in_flight_and_one_lane_at_a_time() -> None:
    hs = Homeserver()
    window = SendWindow(hs.deliver, limit=3)
    for person in range(5):
        for n in range(2):
            window.submit(outgoing(f"p{person}-{n}", lane=f"@p{person}"))
    await settle()
    assert hs.in_flight == 3  # five people waiting, three in flight
    assert all(txn.endswith("-0") for txn in hs.started)  # nobody's second before their first
    for _ in range(10):
        hs.release_all()
        await settle()
    assert await window.drain(1)
    assert hs.peak == 3
    for person in range(5):
        assert hs.started.index(f"p{person}-0") < hs.started.index(f"p{person}-1")


async def test_a_rate_limit_halves_the_window_and_pauses_then_it_grows_back() -> None:
    hs = Homeserver()
    window = SendWindow(hs.deliver, limit=8)
    window.rate_limited(50)
    window.rate_limited(50)  # the same pause: halved once
    assert window.current == 4
    for n in range(8):
        window.submit(outgoing(f"m{n}", lane=f"@p{n}"))
    await settle()
    assert hs.started == []  # paused for retry_after_ms
    await asyncio.sleep(0.08)
    await settle()
    assert hs.in_flight == 4
    for _ in range(10):
        hs.release_all()
        await settle()
    assert await window.drain(1)
    assert window.current == 5  # one more after a window's worth of deliveries


async def test_undelivered_sends_are_stored_with_the_mark_and_resent_after_a_crash(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "db.sqlite")
    await db.open()
    await db.migrate("outbox", MIGRATIONS)
    hs = Homeserver()
    window = SendWindow(hs.deliver)
    await window.load(db)
    with window.scope("$cmd", "@a") as scope:
        for n in range(3):
            scope.outgoing.append(window.submit(outgoing(f"t{n}")))
    await settle()
    hs.gates.setdefault("t0", asyncio.Event()).set()  # t0 delivered before the mark
    await settle()
    await db.batch(window.persist_statements(scope))
    stored = [r[0] for r in await db.fetchall("SELECT txn_id FROM outbox ORDER BY seq")]
    assert stored == ["t1", "t2"]
    await window.close()  # the crash: t1 in flight, t2 queued

    again = Homeserver()
    restarted = SendWindow(again.deliver)
    assert await restarted.load(db) == 2
    for _ in range(5):
        again.release_all()
        await settle()
    assert await restarted.drain(1)
    assert again.started == ["t1", "t2"]  # the same transaction IDs, in order
    assert await db.fetchall("SELECT txn_id FROM outbox") == []  # forgotten once delivered
    await db.close()
