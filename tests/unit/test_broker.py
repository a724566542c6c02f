"""One reading of a broker URL for every program (edgeinfer.broker)."""

from __future__ import annotations

import socket

import pytest

from edgeinfer.broker import Broker, set_socket_options


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1:1883", Broker("127.0.0.1", 1883)),
        ("mqtt://broker", Broker("broker", 1883)),
        ("tcp://10.0.0.1:18830", Broker("10.0.0.1", 18830)),
        ("mqtts://broker.example", Broker("broker.example", 8883, tls=True)),
        ("ssl://broker:8884", Broker("broker", 8884, tls=True)),
    ],
)
def test_a_broker_url_is_read_the_same_everywhere(url, expected):
    assert Broker.parse(url) == expected


@pytest.mark.parametrize(
    "url", ["http://broker:1883", "mqtt://", "127.0.0.1:1883", "mqtt://host:99999", ""]
)
def test_anything_else_is_refused(url):
    with pytest.raises(ValueError, match="mqtt"):
        Broker.parse(url)


def test_the_url_and_edgecores_form():
    broker = Broker.parse("tcp://127.0.0.1:18830")
    assert broker.url == "mqtt://127.0.0.1:18830"
    assert broker.tcp == "tcp://127.0.0.1:18830"
    assert Broker.parse("mqtts://b").url == "mqtts://b:8883"


def test_the_socket_options_set_nodelay():
    with socket.socket() as sock:
        set_socket_options(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
