"""The stand-in's twin engine produces edgecore's messages as SPEC §2 gives them."""

from __future__ import annotations

import json

import pytest

from kubeedge_sim.engine import TwinEngine
from kubeedge_sim.store import TwinStore
from kubeedge_twin import DeviceDefinition, Layout
from kubeedge_twin.messages import TwinFormatError, check_value, report


def _engine(layout: Layout = Layout.V1_4) -> TwinEngine:
    engine = TwinEngine(TwinStore(), layout=layout, node="node-a")
    engine.add_device(
        DeviceDefinition("led", "default", "node-a", "LEDLight", {"power-status": ("ON", "string")})
    )
    return engine


def _by_topic(outbox):
    return {topic: json.loads(payload) for topic, payload in outbox}


def test_device_added_publishes_document_with_null_last_delta_and_membership():
    engine = TwinEngine(TwinStore(), layout=Layout.V1_4, node="node-a")
    out = _by_topic(
        engine.add_device(DeviceDefinition("led", desired={"power-status": ("ON", "string")}))
    )
    doc = out["$hw/events/device/led/twin/update/document"]
    assert doc["twin"]["power-status"]["last"] is None
    current = doc["twin"]["power-status"]["current"]
    assert current["expected"]["value"] == "ON"
    assert current["optional"] is False
    assert current["metadata"] == {"type": "string"}
    delta = out["$hw/events/device/led/twin/update/delta"]
    assert delta["delta"] == {"power-status": "ON"}
    assert set(delta) == {"event_id", "timestamp", "twin", "delta"}
    membership = out["$hw/events/node/node-a/membership/updated"]
    assert membership["removed_devices"] is None
    assert membership["added_devices"][0]["id"] == "led"


def test_edge_report_gets_result_without_code_document_and_no_delta_when_in_sync():
    engine = _engine()
    payload = (
        b'{"event_id":"e1","timestamp":1,"twin":{"power-status":'
        b'{"actual":{"value":"ON"},"metadata":{"type":"string"}}}}'
    )
    out = _by_topic(engine.twin_update("led", payload))
    result = out["$hw/events/device/led/twin/update/result"]
    assert result["event_id"] == "e1"
    assert "code" not in result
    twin = result["twin"]["power-status"]
    assert twin["actual"]["value"] == "ON"
    assert isinstance(twin["actual"]["metadata"]["timestamp"], int)
    assert twin["optional"] is False
    assert "expected_version" not in twin
    assert "actual_version" not in twin
    assert out["$hw/events/device/led/twin/update/document"]["event_id"] == "e1"
    assert "$hw/events/device/led/twin/update/delta" not in out


def test_delta_is_resent_after_every_operation_while_a_mismatch_remains():
    engine = _engine()
    payload = report({"other": "x"}).encode()
    for _ in range(2):
        out = _by_topic(engine.twin_update("led", payload))
        assert out["$hw/events/device/led/twin/update/delta"]["delta"] == {"power-status": "ON"}


def test_unknown_device_gets_404_on_its_result_topic():
    out = _by_topic(_engine().twin_update("ghost", report({"a": "b"}).encode()))
    result = out["$hw/events/device/ghost/twin/update/result"]
    assert result["code"] == 404
    assert result["reason"] == "Update rejected due to the device is not existed"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"event_id":"x","timestamp":1}',
        b'{"twin":{"k":{"actual":{"value":"has space"}}}}',
    ],
)
def test_malformed_updates_get_400_on_the_empty_device_topic(payload):
    out = _by_topic(_engine().twin_update("led", payload))
    error = out["$hw/events/device//twin/update/result"]
    assert error["code"] == 400
    assert error["event_id"] == ""


def test_type_error_gets_400_with_event_id_on_own_topic():
    engine = _engine()
    payload = b'{"event_id":"t","twin":{"n":{"actual":{"value":"abc"},"metadata":{"type":"int"}}}}'
    out = _by_topic(engine.twin_update("led", payload))
    result = out["$hw/events/device/led/twin/update/result"]
    assert (result["code"], result["reason"], result["event_id"]) == (
        400,
        "the value is not int",
        "t",
    )


def test_get_returns_all_twins_or_404():
    engine = _engine()
    ok = _by_topic(engine.twin_get("led", b'{"event_id":"req-42","timestamp":0}'))
    got = ok["$hw/events/device/led/twin/get/result"]
    assert got["event_id"] == "req-42"
    assert got["twin"]["power-status"]["expected"]["value"] == "ON"
    missing = _by_topic(engine.twin_get("nope", b"{}"))["$hw/events/device/nope/twin/get/result"]
    assert missing["code"] == 404
    assert missing["reason"] == "Device nope not found while getting twin"


def test_cloud_change_without_version_is_rejected_and_with_version_accepted():
    engine = _engine()
    without = (
        b'{"event_id":"c","timestamp":1,"twin":{"power-status":{"expected":{"value":"OFF"},'
        b'"metadata":{"type":"string"}}}}'
    )
    assert engine.cloud_updated("led", without) == []
    assert not engine.twin_module_down
    out = _by_topic(engine.set_desired("led", {"power-status": "OFF"}))
    assert out["$hw/events/device/led/twin/update/delta"]["delta"] == {"power-status": "OFF"}
    assert "$hw/events/device/led/twin/update/result" not in out


def test_edge_sent_expected_blocks_later_cloud_changes():
    engine = _engine()
    engine.twin_update("led", b'{"twin":{"power-status":{"expected":{"value":"DIM"}}}}')
    engine.set_desired("led", {"power-status": "OFF"})
    twin = engine.device("led").twins["power-status"]
    assert (
        twin.expected.value == "DIM"
    )  # SPEC §2.3: the edge's expected wins; edges must not send it


def test_state_update_1_4_accepts_only_its_three_values():
    engine = _engine()
    assert engine.state_update("led", b'{"state":"OK"}') == []
    out = _by_topic(engine.state_update("led", b'{"event_id":"","timestamp":1,"state":"online"}'))
    device = out["$hw/events/device/led/state/update/result"]["device"]
    assert device["name"] == "led"
    assert device["state"] == "online"
    assert len(device["last_online"]) == len("2006-01-02 15:04:05")


def test_layout_1_17_uses_namespace_in_ids_and_topics():
    engine = _engine(Layout.V1_17)
    out = _by_topic(engine.twin_get("default/led", b"{}"))
    assert "$hw/events/device/default/led/twin/get/result" in out
    assert engine.topics.parse("$hw/events/device/default/led/twin/update") == (
        "default/led",
        "/twin/update",
    )
    assert engine.topics.parse("$hw/events/device/led/twin/update") is None


def test_membership_get_lists_devices_without_twins():
    out = _by_topic(_engine().membership_get(b'{"event_id":"req-7"}'))
    result = out["$hw/events/node/node-a/membership/get/result"]
    assert result["event_id"] == "req-7"
    assert result["devices"][0]["id"] == "led"
    assert "twin" not in result["devices"][0]


def test_value_pattern_matches_kubeedge():
    assert check_value("failed:sha256_mismatch") == "failed:sha256_mismatch"
    for bad in ("a b", 'a"b', "a=b", "a+b", "x" * 513, "é"):
        with pytest.raises(TwinFormatError):
            check_value(bad)


@pytest.mark.parametrize(
    "twin",
    [
        b'{"power-status":{"expected":{"value":"OFF"},"expected_version":{"cloud":9,"edge":0}}}',
        b'{"power-status":null}',
        b'{"brand-new":{"expected":{"value":"x"},"metadata":null}}',
    ],
)
def test_a_cloud_change_without_metadata_takes_the_twin_module_down_as_edgecore_panics(
    twin: bytes,
) -> None:
    engine = _engine()
    payload = b'{"event_id":"c","timestamp":1,"twin":' + twin + b"}"
    assert engine.cloud_updated("led", payload) == []
    assert engine.twin_module_down
    assert engine.twin_get("led", b"{}") == []
    assert engine.twin_update("led", b'{"twin":{"power-status":{"actual":{"value":"ON"}}}}') == []
    assert engine.set_desired("led", {"power-status": "OFF"}) == []
    assert engine.device("led") is not None  # membership and devices live in other modules
