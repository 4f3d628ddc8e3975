"""The results as a table (figure, dorfbot, floor, ratio, target, met?) and as a chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    figure: str
    dorfbot: float | None
    floor: float | None = None
    target: str = ""
    met: bool | None = None
    counts: bool = False  # a count (lost, duplicated): no ratio

    @property
    def ratio(self) -> float | None:
        if self.counts or self.dorfbot is None or not self.floor:
            return None
        return self.dorfbot / self.floor

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "dorfbot": self.dorfbot,
            "floor": self.floor,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
        }


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def rows(results: dict[str, Any]) -> list[Row]:
    """The table's rows from whatever benchmarks ran."""
    out: list[Row] = []
    b1 = results.get("B1")
    if b1:
        for label, key, floor_key in (
            ("!ping", "dorfbot !ping", "floor !ping"),
            ("!angebote", "dorfbot !angebote", "floor !ping"),
        ):
            for q in ("p50", "p95", "p99"):
                dorf, floor = _get(b1, key, q), _get(b1, floor_key, q)
                row = Row(f"B1 {label} {q} (ms)", dorf, floor)
                limit = {
                    ("!ping", "p50"): 1.10,
                    ("!ping", "p99"): 1.25,
                    ("!angebote", "p50"): 1.25,
                }.get((label, q))
                if limit is not None:
                    # The floor echoes: its !angebote answer is its !ping answer.
                    row.target = f"<= {limit:.2f}x floor"
                    row.met = None if row.ratio is None else row.ratio <= limit
                out.append(row)
    b2 = results.get("B2")
    if b2 and "error" not in b2:
        n = (b2.get("residents") or 0) * (b2.get("per_resident") or 0)
        for variant, where in (("shared", "4 shared rooms"), ("own", "own room each")):
            d, f = _get(b2, variant, "dorfbot") or {}, _get(b2, variant, "floor") or {}
            if not d:
                continue
            drain = Row(f"B2 {n:,} cmds, {where}: drain (s)", d.get("drain_s"), f.get("drain_s"))
            if f.get("lost"):
                # A floor that dropped commands finished less work: no fair ratio.
                drain.target = f"n/a: floor lost {f['lost']}"
            else:
                drain.target = "<= 1.20x floor"
                drain.met = None if drain.ratio is None else drain.ratio <= 1.2
            out.append(drain)
            out.append(
                Row(f"B2 {where}: answers/s", d.get("answers_per_s"), f.get("answers_per_s"))
            )
            out.append(
                Row(
                    f"B2 {where}: per-command p50 (ms)",
                    _get(d, "latency", "p50"),
                    _get(f, "latency", "p50"),
                )
            )
            out.append(
                Row(
                    f"B2 {where}: lost",
                    d.get("lost"),
                    f.get("lost"),
                    "0",
                    d.get("lost") == 0,
                    counts=True,
                )
            )
            out.append(
                Row(
                    f"B2 {where}: duplicated",
                    d.get("duplicated"),
                    f.get("duplicated"),
                    "0",
                    d.get("duplicated") == 0,
                    counts=True,
                )
            )
    b8 = results.get("B8")
    if b8 and "error" not in b8:
        for variant, where in (("one_room", "one room"), ("ten_rooms", "ten rooms")):
            part = b8.get(variant) or {}
            d, f, w = (
                part.get("dorfbot") or {},
                part.get("floor") or {},
                part.get("dorfbot_window_1") or {},
            )
            n = d.get("commands") or 0
            drain = Row(
                f"B8 {n} cmds, 10 residents, {where}: drain (s)",
                d.get("drain_s"),
                f.get("drain_s"),
                "<= 0.50x floor",
            )
            drain.met = None if drain.ratio is None else drain.ratio <= 0.5
            out.append(drain)
            out.append(
                Row(f"B8 {where}: drain with send_window 1 (s)", w.get("drain_s"), f.get("drain_s"))
            )
            ok = d.get("answered") == d.get("commands") and d.get("duplicated") == 0
            out.append(
                Row(
                    f"B8 {where}: answered once",
                    (d.get("answered") or 0) - (d.get("duplicated") or 0),
                    f.get("answered"),
                    "all, once",
                    ok,
                    counts=True,
                )
            )
    b3 = results.get("B3")
    if b3:
        out.append(Row("B3 listing, category/district p50 (ms)", _get(b3, "listing", "p50")))
        p99 = _get(b3, "listing", "p99")
        out.append(Row("B3 listing, category/district p99 (ms)", p99, None, "<= 5 ms", _le(p99, 5)))
        out.append(Row("B3 !finde full-text p50 (ms)", _get(b3, "find", "p50")))
        p99 = _get(b3, "find", "p99")
        out.append(Row("B3 !finde full-text p99 (ms)", p99, None, "<= 5 ms", _le(p99, 5)))
    b4 = results.get("B4")
    if b4:
        row = Row(
            "B4 !rundruf to 100 rooms (s)", b4.get("dorfbot_s"), b4.get("bare_s"), "<= 1.50x bare"
        )
        row.met = None if row.ratio is None else row.ratio <= 1.5
        out.append(row)
    b5 = results.get("B5")
    if b5:
        out.append(Row("B5 restart -> 1,000 answered (s)", b5.get("restart_to_all_answered_s")))
        ok = b5.get("answered") == b5.get("commands") and b5.get("duplicated") == 0
        out.append(
            Row(
                "B5 answered once (of 1,000)",
                (b5.get("answered") or 0) - (b5.get("duplicated") or 0),
                None,
                "all, once",
                ok,
            )
        )
    b6 = results.get("B6")
    if b6 and "error" not in b6:
        rooms = b6.get("rooms") or 0
        floor_start = _get(b6, "floor", "start_to_first_reply_s")
        for case in b6.get("runs", []):
            value = case.get("start_to_first_reply_s")
            out.append(
                Row(
                    f"B6 {rooms:,} rooms, {case['case']}: to first reply (s)",
                    value,
                    floor_start,
                    "<= 10 s",
                    _le(value, 10),
                )
            )
        peak = b6.get("peak_rss_mb")
        out.append(
            Row(
                f"B6 {rooms:,} rooms: peak RSS (MB)",
                peak,
                _get(b6, "floor", "peak_rss_mb"),
                "<= 200 MB",
                _le(peak, 200),
            )
        )
    b7 = results.get("B7")
    if b7:
        for label, key, limit in (
            ("month expansion", "month_expand", 15),
            ("month expansion after a change", "month_expand_changed", None),
            ("!termine monat reply", "month_reply", None),
            (".ics feed", "feed", 200),
        ):
            p50 = _get(b7, key, "p50")
            if p50 is None:
                continue
            if limit is None:
                out.append(Row(f"B7 {label} p50 (ms)", p50))
            else:
                target = f"<= {limit} ms"
                out.append(Row(f"B7 {label} p50 (ms)", p50, None, target, _le(p50, limit)))
            out.append(Row(f"B7 {label} p99 (ms)", _get(b7, key, "p99")))
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table(table_rows: list[Row]) -> str:
    header = ("figure", "dorfbot", "floor", "ratio", "target", "met?")
    lines = [header]
    for row in table_rows:
        met = "" if row.met is None and not row.target else ("yes" if row.met else "NO")
        if row.target and row.met is None:
            met = "n/a"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append((row.figure, _fmt(row.dorfbot), _fmt(row.floor), ratio, row.target, met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:4], widths[1:4], strict=True)
        ]
        cells += [line[4].ljust(widths[4]), line[5]]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """ECDFs of B1 and B2 latencies, B2's answers over time; returns why not, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    b1, b2 = results.get("B1"), results.get("B2")
    if not b1 and not b2:
        return "neither B1 nor B2 ran"
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    colours = {"dorfbot": "#1f6f43", "floor": "#8a8a8a"}

    def ecdf(ax: Any, values: list[float], label: str, colour: str, style: str = "-") -> None:
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=label, color=colour, linestyle=style, linewidth=1.6)

    ax = axes[0]
    if b1:
        samples = b1.get("samples_ms", {})
        for key, style in (
            ("dorfbot !ping", "-"),
            ("floor !ping", "-"),
            ("dorfbot !angebote", "--"),
        ):
            values = samples.get(key) or []
            if values:
                p50 = sorted(values)[len(values) // 2]
                ecdf(ax, values, f"{key} (p50 {p50:.0f} ms)", colours[key.split()[0]], style)
        everything = sorted(v for vals in samples.values() for v in vals)
        if everything:  # the far tail (a few GC pauses) would squash the rest
            ax.set_xlim(0, everything[int(len(everything) * 0.995) - 1] * 1.15)
        ax.set_title(f"B1 reply latency, {b1.get('rounds')} round trips each")
        ax.set_xlabel("send -> reply at the resident's client (ms; axis ends at p99.5)")
        ax.set_ylabel("fraction of round trips")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    styles = {"own": "-", "shared": "--"}
    names = {"own": "own room each", "shared": "4 shared rooms"}
    ax = axes[1]
    if b2:
        for variant in ("own", "shared"):
            for who in ("dorfbot", "floor"):
                values = _get(b2, variant, who, "latency_samples_ms") or []
                if values:
                    ecdf(
                        ax,
                        [v / 1000 for v in values],
                        f"{who}, {names[variant]} ({len(values)} answered)",
                        colours[who],
                        styles[variant],
                    )
        ax.set_title(
            f"B2 burst: per-command latency ({b2.get('residents')} residents x "
            f"{b2.get('per_resident')} commands)"
        )
        ax.set_xlabel("send -> reply (s)")
        ax.set_ylabel("fraction of answered commands")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    ax = axes[2]
    if b2:
        for variant in ("own", "shared"):
            for who in ("dorfbot", "floor"):
                points = _get(b2, variant, who, "progress") or []
                if points:
                    ax.plot(
                        [p[0] for p in points],
                        [p[1] for p in points],
                        label=f"{who}, {names[variant]}",
                        color=colours[who],
                        linestyle=styles[variant],
                        linewidth=1.8,
                    )
        total = (b2.get("residents") or 0) * (b2.get("per_resident") or 0)
        ax.axhline(total, color="#c0392b", linewidth=0.8, linestyle=":", label="commands sent")
        ax.set_title("B2 burst: commands answered over time")
        ax.set_xlabel("seconds since the burst began")
        ax.set_ylabel("answered")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("dorfbot against a bare matrix-nio bot (the floor), same Synapse, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
