"""A live terminal table of the fleet while it runs (rich)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


def add_snapshots(snapshots: Mapping[Any, Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the running counts of several processes."""
    total: dict[str, Any] = {"versions": {}}
    for snapshot in snapshots.values():
        for key, value in snapshot.items():
            if key == "versions":
                for version, count in value.items():
                    total["versions"][version] = total["versions"].get(version, 0) + count
            else:
                total[key] = total.get(key, 0) + value
    return total


class LiveView:
    """Redraws one table per ``update``; answers/s is measured between updates."""

    def __init__(self, console: Console, title: str) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._title = title
        self._last: tuple[float, int] | None = None

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, snapshot: Mapping[str, Any]) -> None:
        """Show the latest running counts."""
        now, answered = time.monotonic(), int(snapshot.get("answered", 0))
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (answered - self._last[1]) / (now - self._last[0])
        self._last = (now, answered)
        table = Table(title=self._title)
        columns = ("sent", "answered", "in flight", "failed", "lost", "answers/s", "models")
        for column in columns:
            table.add_column(column, justify="right")
        sent = int(snapshot.get("sent", 0))
        versions = ", ".join(f"{v}: {n}" for v, n in sorted(snapshot["versions"].items()))
        table.add_row(
            str(sent),
            str(answered),
            str(max(0, sent - answered - int(snapshot.get("lost", 0)))),
            str(snapshot.get("failed", 0)),
            str(snapshot.get("lost", 0)),
            f"{rate:.0f}",
            versions or "-",
        )
        self._live.update(table, refresh=True)
