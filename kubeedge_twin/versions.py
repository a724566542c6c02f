"""What a KubeEdge release means for a program on its edge node: the one place that says it.

- **1.4-1.14**: desired twins over MQTT (``twin/update/delta``), Device API ``v1alpha2``, device
  ids are bare names in the topics (layout 1.4).
- **1.15-1.16**: desired twins only over DMI (edgecore calls the mapper of the Device's protocol),
  Device API ``v1beta1``; MQTT topics still in layout 1.4; edgecore's DMI socket is the file
  ``/etc/kubeedge/dmi.sock``.
- **1.17-1.22**: as 1.15, topics in layout 1.17 (``<namespace>/<name>``).
- **1.23+**: as 1.17, and ``modules.deviceTwin.dmiSockPath`` is a directory holding ``dmi.sock``
  (default ``/etc/kubeedge``).

Sources: ``../shared/kubeedge/SPEC.md`` (topics by release), ``DMI.md`` (1.15+), and the real
edgecores v1.4.0 and v1.23.1 the tests run against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubeedge_twin.topics import Layout

MQTT = "mqtt"
DMI = "dmi"


@dataclass(frozen=True, slots=True)
class KubeEdge:
    """One KubeEdge release as its edge node presents it."""

    release: tuple[int, int]
    layout: Layout
    transport: str  # MQTT or DMI: how desired twin values reach a device's program
    device_api: str  # devices.kubeedge.io version: v1alpha2 or v1beta1
    dmi_socket: str  # edgecore's default DMI socket (a file, or a directory holding dmi.sock)

    @classmethod
    def of(cls, version: str) -> KubeEdge:
        """The release named ``version`` (``1.4``, ``v1.23.1``, ``1.17``...).

        Raises:
            ValueError: for something that is not a KubeEdge version, or older than 1.4.
        """
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", version.strip())
        if match is None:
            raise ValueError(f"not a KubeEdge version: {version!r} (e.g. 1.4, 1.23)")
        release = (int(match[1]), int(match[2]))
        if release < (1, 4):
            raise ValueError(f"KubeEdge {version} is older than 1.4, the oldest supported")
        current = release >= (1, 15)
        return cls(
            release=release,
            layout=Layout.V1_17 if release >= (1, 17) else Layout.V1_4,
            transport=DMI if current else MQTT,
            device_api="v1beta1" if current else "v1alpha2",
            dmi_socket=(
                "/etc/kubeedge"
                if release >= (1, 23)
                else "/etc/kubeedge/dmi.sock"
                if current
                else ""
            ),
        )

    @property
    def name(self) -> str:
        """``major.minor``."""
        return f"{self.release[0]}.{self.release[1]}"
