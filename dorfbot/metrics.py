"""Prometheus metrics of one bot, in its own registry (tests run several bots in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters and histograms served at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "dorfbot_commands",
            "Commands handled, by command and outcome",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "dorfbot_errors", "Commands that failed with an error", registry=self.registry
        )
        self.latency = Histogram(
            "dorfbot_command_seconds",
            "Time from receiving a command to finishing its reply",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "dorfbot_sync_lag_seconds",
            "Seconds since the last completed sync",
            registry=self.registry,
        )
        self.pending = Gauge(
            "dorfbot_pending_items",
            "Items waiting for moderation, per village",
            ["village"],
            registry=self.registry,
        )

    def observe_command(self, command: str, outcome: str, seconds: float) -> None:
        self.commands.labels(command=command, outcome=outcome).inc()
        self.latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
