"""Is the bot's account held back by the homeserver's message rate limit? (operators)

Synapse's default ``rc_message`` (0.2 messages/s, burst 10) holds a busy bot
to one reply every five seconds once ten have gone out. The client API does
not tell anyone their limit, so :func:`check` measures it: in a private room
of its own the bot sends up to :data:`PROBE_MESSAGES` notices in a row, without
retrying, and stops at the first ``M_LIMIT_EXCEEDED``; then it leaves and
forgets the room. With a server admin's access token, :func:`lift` sets
Synapse's per-user override (``POST /_synapse/admin/v1/users/<user>/override_ratelimit``
with 0/0, "no limit") and checks it. ``dorfbot setup`` and
``dorfbot check-config --online`` run this and print :func:`report`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from dorfbot.matrix import Matrix

log = logging.getLogger(__name__)

PROBE_MESSAGES = 15
"""More than Synapse's default burst (10), few enough to be quick."""
UNLIMITED = {"messages_per_second": 0, "burst_count": 0}
"""Synapse's override meaning "no message rate limit for this user"."""


@dataclass(frozen=True)
class RateCheck:
    limited: bool
    accepted: int
    """Messages accepted in a row before the first refusal (or all of them)."""
    retry_after_ms: int | None = None
    override: dict[str, Any] | None = None
    """The admin API's override for the account, when an admin token was given."""
    lifted: bool = False
    """This run set the override."""


def _unlimited(override: dict[str, Any] | None) -> bool:
    return bool(
        override and override.get("messages_per_second") == 0 and override.get("burst_count") == 0
    )


async def probe(matrix: Matrix, messages: int = PROBE_MESSAGES) -> RateCheck:
    """Up to ``messages`` notices in a row into a fresh private room; count the refusal."""
    accepted, retry_after = await matrix.probe_message_rate(messages)
    return RateCheck(accepted < messages, accepted, retry_after)


async def check(matrix: Matrix, admin_token: str | None = None) -> RateCheck:
    """Measure the limit; with ``admin_token``, lift it if it holds the bot back."""
    override: dict[str, Any] | None = None
    if admin_token:
        override = await matrix.ratelimit_override(admin_token)
        if _unlimited(override):
            return RateCheck(False, 0, override=override)
    result = await probe(matrix)
    if not result.limited or not admin_token:
        return RateCheck(result.limited, result.accepted, result.retry_after_ms, override)
    after = await matrix.ratelimit_override(admin_token, UNLIMITED)
    return RateCheck(True, result.accepted, result.retry_after_ms, after, _unlimited(after))


def report(result: RateCheck, matrix: Matrix) -> list[str]:
    """What the operator reads: the finding, and how to lift the limit."""
    user = matrix.user_id
    if result.lifted:
        return [
            f"Rate limit: the homeserver held {user} back after {result.accepted} messages "
            "in a row; lifted now with the admin API (override_ratelimit 0/0)."
        ]
    if _unlimited(result.override):
        return [f"Rate limit: none for {user} (override_ratelimit is 0/0)."]
    if not result.limited:
        return [
            f"Rate limit: {result.accepted} messages in a row accepted for {user}; "
            "no limit in the way."
        ]
    wait = f", retry after {result.retry_after_ms / 1000:.1f} s" if result.retry_after_ms else ""
    url = matrix.ratelimit_override_url()
    return [
        f"Rate limit: the homeserver refused the bot's message number {result.accepted + 1} "
        f"in a row (M_LIMIT_EXCEEDED{wait}). With Synapse's default (0.2 messages/s, "
        "burst 10) a busy village gets one reply every five seconds.",
        "Lift it for the bot's account with Synapse's admin API (as a server admin):",
        f"  curl -X POST -H 'Authorization: Bearer <admin access token>' "
        f"-d '{{\"messages_per_second\": 0, \"burst_count\": 0}}' '{url}'",
        "or let dorfbot do it: DORFBOT_ADMIN_TOKEN=<admin access token> "
        "dorfbot check-config --online",
    ]


async def checked_report(matrix: Matrix) -> list[str]:
    """:func:`check` and :func:`report`; the admin token comes from ``DORFBOT_ADMIN_TOKEN``."""
    admin_token = os.environ.get("DORFBOT_ADMIN_TOKEN") or None
    return report(await check(matrix, admin_token), matrix)
