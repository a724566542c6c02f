"""A canary whose edge model finds more faces hard than the version before is rolled back
(``push --max-offload-rate-rise``), read from the twins the runtimes report."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from cloud_trainer.push import CanaryPolicy, RolloutFailed, rollout


class Twins:
    """Devices whose runtimes serve what is desired at once, then report ``rate_after``."""

    def __init__(self, devices: list[str], rate_before: str, rate_after: str) -> None:
        self.wanted = {d: {"model_version": "1.0.0"} for d in devices}
        self.served = {
            d: {"model_version": "1.0.0", "model_status": "serving", "offload_rate": rate_before}
            for d in devices
        }
        self.rate_after = rate_after

    def desired(self, device: str) -> dict[str, str]:
        return dict(self.wanted[device])

    def reported(self, device: str) -> dict[str, str]:
        return dict(self.served[device])

    def set_desired(self, device: str, values: Mapping[str, str]) -> None:
        self.wanted[device] = dict(values)
        rate = self.rate_after if values["model_version"] != "1.0.0" else "0.3000"
        self.served[device] = {**values, "model_status": "serving", "offload_rate": rate}


POLICY = CanaryPolicy(count=1, timeout_s=5, poll_s=0.01, max_offload_rate_rise=0.05)
NEW = {"model_version": "1.1.0"}


def test_a_canary_offloading_more_is_rolled_back_and_the_rest_untouched() -> None:
    twins = Twins(["canary", "rest"], rate_before="0.3000", rate_after="0.4200")
    with pytest.raises(RolloutFailed, match=r"canary found 42.0% of faces hard .* 30.0% before"):
        rollout(twins, ["canary", "rest"], NEW, POLICY, lambda _line: None)
    assert twins.desired("canary") == {"model_version": "1.0.0"}
    assert twins.desired("rest") == {"model_version": "1.0.0"}


def test_a_canary_offloading_less_or_a_little_more_goes_on() -> None:
    for after in ("0.1200", "0.3400"):
        twins = Twins(["canary", "rest"], rate_before="0.3000", rate_after=after)
        rollout(twins, ["canary", "rest"], NEW, POLICY, lambda _line: None)
        assert twins.desired("rest") == NEW


def test_without_a_rate_after_the_soak_the_canary_is_not_trusted() -> None:
    twins = Twins(["canary"], rate_before="0.3000", rate_after="")
    with pytest.raises(RolloutFailed, match="no offload_rate"):
        rollout(twins, ["canary"], NEW, POLICY, lambda _line: None)
