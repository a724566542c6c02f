"""Follow the desired model in the runtime's KubeEdge device twin: fetch, verify, swap, report.

Twins (SPEC §2): desired ``model_version``, ``model_uri`` (the version's manifest.json in the
model store), ``model_sha256`` (the manifest's sha256) and optionally ``model_signature``
(hex ed25519 over the manifest). Reported: the same names for what is served, plus
``model_status`` (``serving``, ``loading`` or ``failed:<reason>``). Only ``actual`` is ever
published (SPEC §2.3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.backends import load_verified, validate_model
from edge_runtime.backends.base import Model
from edge_runtime.errors import EdgeError, ModelRejected
from edge_runtime.futures import report_in_background
from edge_runtime.manifest import Manifest
from edge_runtime.model_store import ModelCache, download
from edge_runtime.settings import Settings
from edgeinfer.twins import (
    MODEL_SHA256,
    MODEL_SIGNATURE,
    MODEL_STATUS,
    MODEL_URI,
    MODEL_VERSION,
)
from kubeedge_twin import TwinSource, sanitize_value

_LOGGER = logging.getLogger(__name__)
_CATCH_UP_S = 0.05  # serving time between two GIL-holding steps of a model load


SwapFn = Callable[[Model], Model]
SwapObserver = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class DesiredModel:
    """The model the twin asks for."""

    version: str
    uri: str
    sha256: str
    signature: str = ""

    @classmethod
    def from_twin(cls, desired: Mapping[str, str]) -> DesiredModel | None:
        """Read the desired twins; ``None`` if no complete model is asked for."""
        version = desired.get(MODEL_VERSION, "")
        uri = desired.get(MODEL_URI, "")
        sha = desired.get(MODEL_SHA256, "").lower()
        if not (version and uri and sha):
            return None
        return cls(version, uri, sha, desired.get(MODEL_SIGNATURE, ""))


@dataclass(frozen=True, slots=True)
class Served:
    """What is being served, as reported."""

    version: str
    uri: str
    sha256: str


def verify_signature(
    manifest_bytes: bytes, signature_hex: str, key_file: str, version: str
) -> None:
    """Check an ed25519 signature over the manifest with the trusted public key (PEM).

    Raises:
        ModelRejected: if the signature is missing or wrong.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not signature_hex:
        raise ModelRejected(version, "signature required but missing")
    key = load_pem_public_key(Path(key_file).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ModelRejected(version, "trusted key is not ed25519")
    try:
        key.verify(bytes.fromhex(signature_hex), manifest_bytes)
    except (InvalidSignature, ValueError) as exc:
        raise ModelRejected(version, "signature invalid") from exc


class ModelSync:
    """Reconciles the served model with the twin's desired model, one change at a time.

    Args:
        settings: Runtime settings (twin and model sections).
        twin: The runtime device's twin (over MQTT or DMI).
        current: The model served at start.
        swap: Replaces the served model between batches; returns the previous one.
        initial: What the starting model is, if it came from the cache or a known URI.
    """

    def __init__(
        self,
        settings: Settings,
        twin: TwinSource,
        *,
        current: Model,
        swap: SwapFn,
        initial: Served | None = None,
        on_swap: SwapObserver | None = None,
    ) -> None:
        self._settings = settings
        self._twin = twin
        self._swap = swap
        self._cache = ModelCache(Path(settings.twin.cache_dir))
        self._served = initial or Served(current.ref.version, "", "")
        self._status = "serving"
        self._latest: DesiredModel | None = None
        self._failed: DesiredModel | None = None
        self._wake = asyncio.Event()
        self._on_swap = on_swap

    @property
    def status(self) -> str:
        """The last reported ``model_status``."""
        return self._status

    def want(self, desired: Mapping[str, str]) -> None:
        """Take the desired values (all of them, as the twin gives them)."""
        wanted = DesiredModel.from_twin(desired)
        if wanted is not None:
            self._latest = wanted
            self._wake.set()

    async def run(self) -> None:
        """Reconcile what ``want`` was given, one change at a time, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted = self._latest
            if wanted is not None:
                await self.reconcile(wanted)

    def report(self) -> None:
        """Publish the served model and status as actual values (after connects, changes)."""
        served = self._served
        values = {MODEL_VERSION: served.version, MODEL_STATUS: self._status}
        if served.uri:
            values[MODEL_URI] = served.uri
        if served.sha256:
            values[MODEL_SHA256] = served.sha256
        report_in_background(self._twin, values, _LOGGER, "twin report")

    def _set_status(self, status: str) -> None:
        self._status = status
        self.report()

    async def reconcile(self, wanted: DesiredModel) -> None:
        """Bring the served model to ``wanted`` (idempotent; failures keep the old model)."""
        served = self._served
        if (wanted.version, wanted.sha256) == (served.version, served.sha256):
            if self._status != "serving":
                self._set_status("serving")
            return
        if wanted == self._failed:
            return  # edgecore re-sends deltas; a refused version is retried only when it changes
        self._set_status("loading")
        try:
            model, manifest = await self._prepare(wanted)
        except (EdgeError, OSError) as exc:
            reason = exc.reason if isinstance(exc, ModelRejected) else str(exc)
            _LOGGER.warning("model %s refused: %s", wanted.version, reason)
            self._failed = wanted
            self._set_status(f"failed:{sanitize_value(reason, 200)}")
            if self._on_swap is not None:
                self._on_swap("failed", wanted.version)
            return
        if self._latest is not None and self._latest != wanted:
            await asyncio.to_thread(model.close)  # superseded while loading; the loop goes on
            return
        previous = self._swap(model)
        self._served = Served(wanted.version, wanted.uri, wanted.sha256)
        self._failed = None
        self._cache.mark_good(wanted.sha256)
        _LOGGER.info(
            "now serving %s %s (was %s)", manifest.ref.name, wanted.version, previous.ref.version
        )
        self._set_status("serving")
        if self._on_swap is not None:
            self._on_swap("ok", wanted.version)
        await asyncio.to_thread(previous.close)  # waits for a batch still running on it

    async def _prepare(self, wanted: DesiredModel) -> tuple[Model, Manifest]:
        twin, model_settings = self._settings.twin, self._settings.model
        manifest, manifest_bytes = await asyncio.to_thread(
            download,
            self._cache,
            uri=wanted.uri,
            manifest_sha256=wanted.sha256,
            version=wanted.version,
            variant=model_settings.variant,
            max_bytes=twin.max_model_bytes,
            timeout_s=twin.fetch_timeout_s,
        )
        if twin.trusted_key_file:
            verify_signature(
                manifest_bytes, wanted.signature, twin.trusted_key_file, wanted.version
            )
        await asyncio.sleep(_CATCH_UP_S)
        model = await asyncio.to_thread(
            load_verified, manifest, model_settings, self._settings.batch.max_size
        )
        try:
            # Creating an interpreter holds the GIL for milliseconds, which stalls serving:
            # one at a time, with a pause between for the event loop to catch up.
            await asyncio.sleep(_CATCH_UP_S)
            await validate_model(model)
            for step in model.warm_up_steps():
                await asyncio.sleep(_CATCH_UP_S)
                await asyncio.to_thread(step)
        except BaseException:
            await asyncio.to_thread(model.close)
            raise
        return model, manifest


def startup_manifest(settings: Settings) -> tuple[Manifest, Served] | None:
    """The cached last-good version to serve at start, before any broker is reachable."""
    if not settings.twin.enabled or settings.model.path:
        return None
    manifest = ModelCache(Path(settings.twin.cache_dir)).last_good()
    if manifest is None:
        return None
    sha = manifest.directory.name
    return manifest, Served(manifest.ref.version, "", sha)
