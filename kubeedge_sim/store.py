"""SQLite storage of devices and twins for the edgecore stand-in (as edgecore keeps them)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubeedge_twin.messages import MsgTwin, TwinValue, TwinVersion

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, namespace TEXT NOT NULL, description TEXT NOT NULL,
    state TEXT NOT NULL, last_online TEXT NOT NULL, resource_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS twins (
    device_id TEXT NOT NULL, name TEXT NOT NULL,
    expected TEXT, expected_ts INTEGER, actual TEXT, actual_ts INTEGER,
    optional INTEGER NOT NULL, type TEXT NOT NULL,
    exp_cloud INTEGER NOT NULL, exp_edge INTEGER NOT NULL,
    act_cloud INTEGER NOT NULL, act_edge INTEGER NOT NULL,
    PRIMARY KEY (device_id, name));
"""


@dataclass(slots=True)
class Twin:
    """A stored twin."""

    expected: TwinValue | None = None
    actual: TwinValue | None = None
    optional: bool = True
    type: str = "string"
    expected_version: TwinVersion = field(default_factory=TwinVersion)
    actual_version: TwinVersion = field(default_factory=TwinVersion)

    def message(self, *, versions: bool = False) -> MsgTwin:
        """As a twin message entry."""
        return MsgTwin(
            expected=self.expected,
            actual=self.actual,
            optional=self.optional,
            type=self.type,
            expected_version=self.expected_version if versions else None,
            actual_version=self.actual_version if versions else None,
        )

    def copy(self) -> Twin:
        """A shallow copy (values are immutable)."""
        return replace(self)


@dataclass(slots=True)
class Device:
    """A stored device and its twins."""

    id: str
    name: str
    namespace: str = "default"
    description: str = ""
    state: str = "unknown"
    last_online: str = ""
    resource_version: int = 0
    twins: dict[str, Twin] = field(default_factory=dict)


class TwinStore:
    """Devices and twins in one SQLite file (``:memory:`` for tests)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def device(self, device_id: str) -> Device | None:
        """Load a device with its twins, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, namespace, description, state, last_online, resource_version "
                "FROM devices WHERE id = ?",
                (device_id,),
            ).fetchone()
            if row is None:
                return None
            device = Device(*row)
            for t in self._db.execute(
                "SELECT name, expected, expected_ts, actual, actual_ts, optional, type, "
                "exp_cloud, exp_edge, act_cloud, act_edge FROM twins WHERE device_id = ?",
                (device_id,),
            ):
                device.twins[t[0]] = Twin(
                    expected=TwinValue(t[1], t[2]) if t[1] is not None else None,
                    actual=TwinValue(t[3], t[4]) if t[3] is not None else None,
                    optional=bool(t[5]),
                    type=t[6],
                    expected_version=TwinVersion(t[7], t[8]),
                    actual_version=TwinVersion(t[9], t[10]),
                )
            return device

    def devices(self) -> list[Device]:
        """All devices (without twins)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, namespace, description, state, last_online, resource_version "
                "FROM devices ORDER BY id"
            ).fetchall()
        return [Device(*row) for row in rows]

    def save(self, device: Device) -> None:
        """Write a device and replace its twins, in one transaction."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    device.id,
                    device.name,
                    device.namespace,
                    device.description,
                    device.state,
                    device.last_online,
                    device.resource_version,
                ),
            )
            self._db.execute("DELETE FROM twins WHERE device_id = ?", (device.id,))
            self._db.executemany(
                "INSERT INTO twins VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        device.id,
                        name,
                        t.expected.value if t.expected else None,
                        t.expected.timestamp if t.expected else None,
                        t.actual.value if t.actual else None,
                        t.actual.timestamp if t.actual else None,
                        int(t.optional),
                        t.type,
                        t.expected_version.cloud,
                        t.expected_version.edge,
                        t.actual_version.cloud,
                        t.actual_version.edge,
                    )
                    for name, t in device.twins.items()
                ],
            )

    def remove(self, device_id: str) -> None:
        """Forget a device."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM twins WHERE device_id = ?", (device_id,))
            self._db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
