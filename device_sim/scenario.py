"""A fleet scenario: groups of cameras with their rates, sources, ramp-up and faults (YAML).

Example::

    broker: mqtt://127.0.0.1:1883
    runtime_id: edge-1
    duration_s: 60
    processes: 2
    groups:
      - name: lobby            # cameras lobby-00, lobby-01, ...
        count: 10
        mode: open             # open (fps per camera) or closed (in_flight outstanding)
        fps: 5
        ramp_up_s: 5           # cameras start spread over the first 5 s
        source: synthetic      # synthetic, samples, folder:PATH or video:PATH
        faults: {malformed_rate: 0.02, disconnect_every_s: 20, disconnect_for_s: 2}
      - name: bench
        count: 2
        mode: closed
        in_flight: 8
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_sim.camera import CameraConfig, Mode
from edge_runtime import Credentials


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate."""


class Faults(BaseModel):
    """Fault injection of one group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    malformed_rate: float = Field(0.0, ge=0, le=1, description="share of malformed requests")
    disconnect_every_s: float = Field(0.0, ge=0, description="drop the connection this often")
    disconnect_for_s: float = Field(1.0, ge=0, description="and stay away this long")


class Group(BaseModel):
    """Cameras that behave alike."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("cam", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    count: int = Field(1, ge=1)
    mode: Literal["open", "closed"] = "open"
    fps: float = Field(2.0, gt=0)
    jitter: float = Field(0.2, ge=0, lt=1)
    in_flight: int = Field(1, ge=1)
    ramp_up_s: float = Field(0.0, ge=0)
    source: str = "synthetic"
    username: str = Field("", description="MQTT user; '{name}' becomes the camera name")
    password: str = ""
    share_for_training: bool = Field(
        False, description="consent: the runtime may keep the hard faces for training"
    )
    faults: Faults = Faults()


class Scenario(BaseModel):
    """A whole fleet run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = "mqtt://127.0.0.1:1883"
    runtime_id: str = "edge-1"
    topic_root: str = "emotion/v1"
    duration_s: float = Field(10.0, gt=0)
    answer_timeout_s: float = Field(10.0, gt=0)
    report_interval_s: float = Field(1.0, gt=0)
    processes: int = Field(1, ge=1)
    seed: int = 0
    groups: tuple[Group, ...] = (Group(),)

    def cameras(self) -> list[tuple[CameraConfig, str]]:
        """Every camera's config and face source spec, in a stable order."""
        cameras = []
        index = 0
        for group in self.groups:
            width = max(2, len(str(group.count - 1)))
            for number in range(group.count):
                name = f"{group.name}-{number:0{width}d}"
                start = group.ramp_up_s * number / group.count
                config = CameraConfig(
                    name=name,
                    broker=self.broker,
                    runtime_id=self.runtime_id,
                    topic_root=self.topic_root,
                    mode=Mode(group.mode),
                    fps=group.fps,
                    jitter=group.jitter,
                    in_flight=group.in_flight,
                    answer_timeout_s=self.answer_timeout_s,
                    seed=self.seed + index,
                    start_delay_s=start,
                    report_interval_s=self.report_interval_s,
                    malformed_rate=group.faults.malformed_rate,
                    share_for_training=group.share_for_training,
                    disconnect_every_s=group.faults.disconnect_every_s,
                    disconnect_for_s=group.faults.disconnect_for_s,
                    credentials=Credentials(group.username.replace("{name}", name), group.password),
                )
                cameras.append((config, group.source))
                index += 1
        return cameras


def load_scenario(path: Path, overrides: dict[str, object] | None = None) -> Scenario:
    """Read a scenario file; ``overrides`` replace top-level fields (from the command line).

    Raises:
        ScenarioError: if the file cannot be read or does not validate.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {path} is not a mapping")
    return build_scenario({**data, **(overrides or {})}, str(path))


def build_scenario(data: dict[str, object], origin: str = "command line") -> Scenario:
    """Validate scenario fields.

    Raises:
        ScenarioError: naming every invalid field.
    """
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"invalid scenario ({origin}):\n{exc}") from exc
