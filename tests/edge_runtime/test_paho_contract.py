"""Contract with paho-mqtt's private members that edge_runtime.paho_client relies on.

These fail when a paho release changes them; the client would then fall back to paho's public
paths (slower, and a read may overshoot the flow control limit), see paho_client's docstring.
"""

from __future__ import annotations

import collections
import inspect
import socket
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_runtime import paho_client
from edge_runtime.paho_client import PahoClient


def test_the_private_members_exist_with_the_shapes_used() -> None:
    assert paho_client.HOOKS
    for name in paho_client.HOOK_METHODS:
        assert callable(getattr(mqtt.Client, name)), name
    assert list(inspect.signature(mqtt.Client._sock_recv).parameters) == ["self", "bufsize"]
    assert list(inspect.signature(mqtt.Client._packet_read).parameters) == ["self"]
    assert list(inspect.signature(mqtt.Client._loop_rc_handle).parameters) == ["self", "rc"]
    assert list(inspect.signature(mqtt.Client._mid_generate).parameters) == ["self"]
    client = PahoClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    assert isinstance(client._out_packet, collections.deque)
    for name in paho_client.HOOK_ATTRIBUTES:
        assert hasattr(client, name), name
    assert isinstance(client._out_messages, dict)
    assert client._in_packet["command"] == 0  # next_packet hands paho whole packets only then
    # The queue entries paho builds (and writes) are the dicts paho_client._joined imitates.
    queued = inspect.getsource(mqtt.Client._packet_queue)
    for key in paho_client.PACKET_KEYS:
        assert f'"{key}":' in queued, key


@pytest.mark.integration
def test_read_packet_handles_one_packet_per_call(broker) -> None:
    """paho's loop_read takes as many packets as messages are in flight; read_packet one."""
    received: list[bytes] = []
    client = PahoClient(
        CallbackAPIVersion.VERSION2, client_id="contract", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.connect(broker.host, broker.port)
    waiting = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN)
    while not client.is_connected():
        assert client.read_packet() in waiting
    client.subscribe("contract/t", qos=1)
    for i in range(20):
        client.publish("contract/t", str(i).encode(), qos=1)
    deadline = time.monotonic() + 10
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    while len(received) < 20 and time.monotonic() < deadline:
        before = len(received)
        assert client.read_packet() in waiting
        assert len(received) - before <= 1
        client.loop_write()
    client.disconnect()
    assert received == [str(i).encode() for i in range(20)]
