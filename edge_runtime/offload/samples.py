"""Hard examples as training data: kept on disk, uploaded to the trainer's intake when it can.

Only the hard faces of requests whose device consented (``share_for_training``) are kept. Each
is one ``edgeinfer.v1.HardExample`` file named by the sha256 of its pixels (a face kept twice is
one file, and one the intake had among the last few thousand is not sent again), written whole
(temporary file, then rename) so a crash leaves no half example. The uploader sends the oldest
first, deletes each once the intake has it (201, or 200: it had it already), drops what the
intake refuses as malformed (4xx), and keeps the rest for later with a growing pause (5xx, 401,
a cloud that is down). Beyond the disk quota a new example is dropped. Every outcome is counted
in ``edge_samples_total{result}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from pathlib import Path
from typing import Final, Protocol

import aiohttp

from edge_runtime.metrics import Metrics
from edge_runtime.settings import SampleSettings
from edgeinfer.intake import CONTENT_TYPE, INTAKE_PATH, example_name
from edgeinfer.v1 import samples_pb2

_LOGGER = logging.getLogger(__name__)
_SUFFIX: Final = ".pb"
_FIRST_PAUSE_S: Final = 1.0
_LONGEST_PAUSE_S: Final = 30.0
_RETRY_STATUSES: Final = frozenset({401, 403, 408, 429})  # the intake may take it later
_SENT_REMEMBERED: Final = 4096  # names of examples done with (about 0.5 MB)


class SampleSink(Protocol):
    """Where the offloader puts hard examples."""

    def keep(self, example: samples_pb2.HardExample) -> None:
        """Keep ``example`` for upload (or count why not)."""
        ...


class SampleSpool:
    """Store and forward of hard examples to ``settings.url`` within ``settings.quota_mb``.

    Args:
        settings: The ``samples.*`` settings.
        metrics: Where outcomes are counted.
        token: The intake's bearer token ("" for none).
    """

    def __init__(self, settings: SampleSettings, metrics: Metrics, *, token: str = "") -> None:
        self._url = settings.url.rstrip("/") + INTAKE_PATH
        self._directory = Path(settings.dir)
        self._directory.mkdir(parents=True, exist_ok=True)
        self._quota = int(settings.quota_mb * 1024 * 1024)
        self._metrics = metrics
        self._headers = {"Content-Type": CONTENT_TYPE}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        # Examples done with (uploaded or refused for good): a face seen again after its upload
        # is a duplicate too, whenever the uploader got to it.
        self._sent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._used = sum(p.stat().st_size for p in self._waiting())
        metrics.samples_waiting_bytes.set(self._used)
        self._wake = asyncio.Event()
        self._wake.set()  # what an earlier run left waits for upload

    @property
    def waiting(self) -> int:
        """Examples on disk not uploaded yet."""
        return len(self._waiting())

    def keep(self, example: samples_pb2.HardExample) -> None:
        """Write ``example`` for upload, unless it is there already or the quota is spent."""
        name = example_name(example)
        path = self._directory / f"{name}{_SUFFIX}"
        if name in self._sent or path.exists():
            self._count("duplicate")
            return
        data = example.SerializeToString()
        if self._used + len(data) > self._quota:
            self._count("dropped_quota")
            _LOGGER.debug("sample quota of %d bytes spent: %s dropped", self._quota, name)
            return
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_bytes(data)
            temporary.replace(path)
        except OSError as exc:
            self._count("dropped_error")
            _LOGGER.warning("cannot keep sample %s: %s", name, exc)
            with contextlib.suppress(OSError):
                temporary.unlink()
            return
        self._used += len(data)
        self._metrics.samples_waiting_bytes.set(self._used)
        self._count("kept")
        self._wake.set()

    async def run(self) -> None:
        """Upload what waits, oldest first, until cancelled."""
        timeout = aiohttp.ClientTimeout(total=10.0)
        pause = _FIRST_PAUSE_S
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self._wake.wait()
                self._wake.clear()
                for path in sorted(self._waiting(), key=_age):
                    if not await self._upload(session, path):
                        self._wake.set()  # try again after the pause
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, _LONGEST_PAUSE_S)
                        break
                    pause = _FIRST_PAUSE_S

    async def _upload(self, session: aiohttp.ClientSession, path: Path) -> bool:
        """Send one example; True when it is done with (uploaded or refused for good)."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return True
        try:
            async with session.post(self._url, data=data, headers=self._headers) as reply:
                status = reply.status
                detail = (await reply.text())[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            _LOGGER.info("sample intake unreachable (%r): %d examples wait", exc, self.waiting)
            return False
        if status in (200, 201):
            self._forget(path, len(data), "uploaded")
            return True
        if 400 <= status < 500 and status not in _RETRY_STATUSES:
            _LOGGER.warning("sample intake refused %s: HTTP %d %s", path.name, status, detail)
            self._forget(path, len(data), "rejected")
            return True
        _LOGGER.info("sample intake answered HTTP %d %s: retrying later", status, detail)
        return False

    def _forget(self, path: Path, size: int, result: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sent[path.name.removesuffix(_SUFFIX)] = None
        if len(self._sent) > _SENT_REMEMBERED:
            self._sent.popitem(last=False)
        self._used = max(0, self._used - size)
        self._metrics.samples_waiting_bytes.set(self._used)
        self._count(result)

    def _count(self, result: str) -> None:
        self._metrics.samples.labels(result).inc()

    def _waiting(self) -> list[Path]:
        return list(self._directory.glob(f"*{_SUFFIX}"))


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
