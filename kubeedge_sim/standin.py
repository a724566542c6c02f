"""The edgecore stand-in: edgecore's DeviceTwin plus a "cloud", on one machine.

This is NOT edgecore. It answers the DeviceTwin MQTT protocol as SPEC §2 describes (results,
documents, deltas re-sent while a mismatch remains, 400/404 errors, the empty-device error
topic) so the demo and the tests run without a cluster. Real deployments use edgecore.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeinfer.broker import Broker, set_socket_options
from kubeedge_sim.cloud import SIM_DESIRED_FILTERS, device_of
from kubeedge_sim.engine import Outbox, TwinEngine
from kubeedge_sim.store import TwinStore
from kubeedge_twin.crd import DeviceDefinition
from kubeedge_twin.messages import TwinFormatError, TwinMessage
from kubeedge_twin.topics import (
    MEMBERSHIP_GET,
    STATE_UPDATE,
    TWIN_CLOUD_UPDATED,
    TWIN_GET,
    TWIN_UPDATE,
    TWIN_UPDATE_DELTA,
    DeviceRef,
    Layout,
)

if TYPE_CHECKING:
    from kubeedge_sim.dmi_edgecore import DmiEdgecore

_LOGGER = logging.getLogger(__name__)


def _nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    set_socket_options(sock)


class EdgecoreStandIn:
    """Serves the DeviceTwin topics of one node on a broker, from a SQLite store.

    Two behaviours, named after the KubeEdge they emulate: without ``dmi_socket``, KubeEdge
    1.4-1.14 (cloud-side desired changes go out as MQTT ``twin/update/delta``); with it,
    KubeEdge 1.15-1.23 (edgecore serves DMI on that socket and hands desired changes to the
    mapper of the Device's protocol with ``RegisterDevice``/``UpdateDevice``; no MQTT delta for
    them, see ``kubeedge_sim.dmi_edgecore``). Edge-side MQTT twin traffic is the same in both.

    Args:
        broker: ``mqtt://host:port``.
        store: Device and twin storage.
        layout: Topic layout (1.4 or >= 1.17).
        node: Node name for membership topics.
        client_id: MQTT client id (must differ from edgecore's ``hub-client-*``).
        dmi_socket: Serve DMI here (edgecore >= 1.15's ``dmi.sock``).
    """

    def __init__(
        self,
        broker: str,
        store: TwinStore,
        *,
        layout: Layout = Layout.V1_4,
        node: str = "edge-node",
        client_id: str = "edgecore-standin",
        dmi_socket: str | None = None,
    ) -> None:
        address = Broker.parse(broker)
        self._host, self._port = address.host, address.port
        self.engine = TwinEngine(store, layout=layout, node=node)
        self._node = node
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_socket_open = _nodelay
        if address.tls:
            self._client.tls_set()
        self.dmi: DmiEdgecore | None = None
        if dmi_socket:  # imported here: grpc is needed only by the DMI mode
            from kubeedge_sim.dmi_edgecore import DmiEdgecore

            self.dmi = DmiEdgecore(self.engine, dmi_socket, self._send)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and start serving on paho's network thread.

        Raises:
            TimeoutError: if the broker does not answer.
        """
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"broker {self._host}:{self._port} unavailable")
        if self.dmi is not None:
            self.dmi.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread (and DMI)."""
        if self.dmi is not None:
            self.dmi.stop()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            _LOGGER.error("broker refused the stand-in: %s", reason)
            return
        topics = self.engine.topics
        client.subscribe(
            [
                (topics.device_filter(TWIN_UPDATE), 1),
                (topics.device_filter(TWIN_GET), 1),
                (topics.device_filter(TWIN_CLOUD_UPDATED), 1),
                (topics.device_filter(STATE_UPDATE), 1),
                (topics.node_topic(self._node, MEMBERSHIP_GET), 1),
                *((f, 1) for f in SIM_DESIRED_FILTERS),
            ]
        )
        self._connected.set()

    def _on_message(self, _client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        topic, payload = message.topic, bytes(message.payload)
        if topic == self.engine.topics.node_topic(self._node, MEMBERSHIP_GET):
            self._send(self.engine.membership_get(payload))
            return
        cloud_device = device_of(topic)
        if cloud_device is not None:
            # The simulated cloud's input (cloud-trainer push, kubeedge-twin-sim set-desired):
            # a Device edit; 1.15+ hands it to the Device's mapper over DMI.
            self._cloud_edit(cloud_device, payload)
            return
        parsed = self.engine.topics.parse(topic)
        if parsed is None:
            return
        device_id, suffix = parsed
        if suffix == TWIN_CLOUD_UPDATED and self.dmi is not None:
            # Edgecore 1.15+ still takes cloud_updated on MQTT into its twin table, but no
            # mapper hears of it (it goes out over DMI only when the Device changes).
            self._send(self._cloud_side(self.engine.cloud_updated(device_id, payload)))
            return
        handlers = {
            TWIN_UPDATE: self.engine.twin_update,
            TWIN_GET: self.engine.twin_get,
            TWIN_CLOUD_UPDATED: self.engine.cloud_updated,
            STATE_UPDATE: self.engine.state_update,
        }
        handler = handlers.get(suffix)
        if handler is not None:
            self._send(handler(device_id, payload))

    def _send(self, outbox: Outbox) -> None:
        # edgecore publishes at QoS 1, not retained (SPEC §1.1).
        for topic, payload in outbox:
            self._client.publish(topic, payload, qos=1, retain=False)

    # the "cloud" interface

    def add_devices(self, definitions: Iterable[DeviceDefinition]) -> None:
        """Bind devices to this node (as creating their Device CRs would)."""
        for definition in definitions:
            self._send(self._cloud_side(self.engine.add_device(definition)))
            if self.dmi is not None:
                device_id = self.engine.topics.device_id(
                    DeviceRef(definition.name, definition.namespace)
                )
                self.dmi.add_device(
                    device_id,
                    definition.name,
                    definition.namespace,
                    definition.protocol,
                    {k: v for k, (v, _) in definition.desired.items()},
                    dict(definition.config_data),
                    model=definition.model,
                )

    def set_desired(self, device_id: str, values: Mapping[str, str]) -> None:
        """Set desired twin values as the cloud does.

        1.4: ``cloud_updated`` and its MQTT delta (SPEC 2.8). 1.15+: cloudcore sends no
        ``cloud_updated``; edgecore calls ``UpdateDevice`` on the Device's mapper over DMI.

        Raises:
            KeyError: if the device is unknown.
        """
        if self.dmi is not None:
            self.dmi.set_desired(device_id, values)
            return
        self._send(self.engine.set_desired(device_id, values))

    def _cloud_edit(self, device_id: str, payload: bytes) -> None:
        try:
            message = TwinMessage.decode(payload)
            values = {
                name: entry.expected.value or ""
                for name, entry in message.twin.items()
                if entry is not None and entry.expected is not None
            }
            self.set_desired(device_id, values)
        except (TwinFormatError, KeyError) as exc:
            _LOGGER.warning("cloud update of %s not applied: %s", device_id, exc)

    def _cloud_side(self, outbox: Outbox) -> Outbox:
        if self.dmi is None:
            return outbox
        # edgecore >= 1.15 never turns a Device's desired values into an MQTT delta (DMI.md §1).
        return [(topic, body) for topic, body in outbox if not topic.endswith(TWIN_UPDATE_DELTA)]
