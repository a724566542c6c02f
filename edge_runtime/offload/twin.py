"""Joint inference through the runtime's twin.

``offload_policy`` desired in; the rule in force and ``offload_rate`` (the share of faces found
hard) reported. The values are ``edgeinfer.hardness.Rule`` strings (``margin,rate:0.2``):
KubeEdge's twin value pattern refuses JSON. An empty desired value gives the settings' rule back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from edge_runtime.backends.base import Model
from edge_runtime.futures import report_in_background
from edge_runtime.metrics import Metrics
from edge_runtime.offload.joint import Offloader
from edgeinfer.hardness import Rule
from edgeinfer.twins import OFFLOAD_POLICY, OFFLOAD_RATE
from kubeedge_twin import TwinSource

_LOGGER = logging.getLogger(__name__)


class OffloadTwin:
    """Follows ``offload_policy`` and reports what joint inference does.

    Args:
        twin: The runtime's twin.
        offloader: What decides which faces are hard.
        model: The model served now (a rate is fitted to it).
        metrics: Where refused desired values are counted.
        interval_s: How often ``offload_rate`` is reported.
    """

    def __init__(
        self,
        twin: TwinSource,
        offloader: Offloader,
        model: Callable[[], Model],
        metrics: Metrics,
        interval_s: float,
    ) -> None:
        self._twin = twin
        self._offloader = offloader
        self._model = model
        self._metrics = metrics
        self._interval_s = interval_s
        self._asked = ""

    def want(self, desired: Mapping[str, str]) -> None:
        """Take the desired values (all of them, as the twin gives them)."""
        text = desired.get(OFFLOAD_POLICY, "")
        if text == self._asked:
            return
        self._asked = text
        try:
            rule = Rule.parse(text) if text else None
        except ValueError as exc:
            _LOGGER.warning("desired %s %r refused: %s", OFFLOAD_POLICY, text, exc)
            self._metrics.twin_values_refused.labels(OFFLOAD_POLICY).inc()
            return
        self._offloader.use(rule, self._model())
        self.report()

    def model_changed(self, model: Model) -> None:
        """A new version is served: a rate gets its threshold."""
        self._offloader.use_model(model)
        self.report()

    def report(self, *, with_rate: bool = False) -> None:
        """Report the rule in force (and, ``with_rate``, the hard share since the last)."""
        values = {OFFLOAD_POLICY: str(self._offloader.rule)}
        if with_rate and (rate := self._offloader.take_rate()) is not None:
            values[OFFLOAD_RATE] = f"{rate:.4f}"
        report_in_background(self._twin, values, _LOGGER, "offload twin report")

    async def run(self) -> None:
        """Report ``offload_rate`` every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            self.report(with_rate=True)
