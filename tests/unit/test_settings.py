"""Settings: defaults < YAML < EDGE_* < flags, validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime.__main__ import build_parser, main
from edge_runtime.errors import ConfigError
from edge_runtime.settings import BackendKind, iter_settings, load_settings


def test_defaults_are_valid():
    settings = load_settings({})
    assert settings.mqtt.broker == "mqtt://127.0.0.1:1883"
    assert settings.client_id == "edge-runtime-edge-1"
    assert settings.twin_device == "emotion-runtime-edge-1"
    assert settings.model.backend is BackendKind.LITERT


def test_layers_override_in_order(tmp_path: Path):
    config = tmp_path / "edge.yaml"
    config.write_text("runtime_id: from-yaml\nbatch:\n  max_size: 32\n  max_queue: 7\n")
    environ = {"EDGE_BATCH_MAX_SIZE": "24", "EDGE_MQTT_BROKER": "mqtt://broker:1884"}
    settings = load_settings(environ, config, {"batch.max_size": "12"})
    assert settings.runtime_id == "from-yaml"
    assert settings.batch.max_queue == 7
    assert settings.batch.max_size == 12
    assert settings.mqtt.broker == "mqtt://broker:1884"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"EDGE_BATCH_MAX_SIZE": "0"}, "batch.max_size"),
        ({"EDGE_BATCH_MAX_SIZE": "many"}, "batch.max_size"),
        ({"EDGE_BATCH_MAX_WAIT_S": "nan"}, "batch.max_wait_s"),
        ({"EDGE_MQTT_BROKER": "http://x"}, "mqtt.broker"),
        ({"EDGE_RUNTIME_ID": "a/b"}, "runtime_id"),
        ({"EDGE_TOPIC_ROOT": "emotion/#"}, "topic_root"),
        ({"EDGE_MODEL_BACKEND": "onnx"}, "model.backend"),
        ({"EDGE_TWIN_ENABLED": "maybe"}, "twin.enabled"),
        ({"EDGE_LIMITS_MAX_FACES_PER_REQUEST": "99"}, "limits.max_faces_per_request"),
        ({"EDGE_MQTT_RESPONSE_TOPIC_FILTER": "replies/#"}, "mqtt.response_topic_filter"),
        ({"EDGE_MQTT_RESPONSE_TOPIC_FILTER": "{root}/{dev}/#"}, "mqtt.response_topic_filter"),
        ({"EDGE_MQTT_RESPONSE_TOPIC_FILTER": "{root}/{device}/a#"}, "mqtt.response_topic_filter"),
        ({"EDGE_MQTT_RESPONSE_TOPIC_FILTER": "{root}/#/{device}"}, "mqtt.response_topic_filter"),
        ({"EDGE_MQTT_RESPONSE_TOPIC_FILTER": "$SYS/{device}"}, "mqtt.response_topic_filter"),
    ],
)
def test_invalid_values_name_the_key(environ, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_unknown_yaml_key_is_an_error(tmp_path: Path):
    config = tmp_path / "edge.yaml"
    config.write_text("batch:\n  max_sise: 3\n")
    with pytest.raises(ConfigError, match=r"batch\.max_sise"):
        load_settings({}, config)


def test_every_setting_has_help_env_and_flag():
    parser_help = build_parser().format_help()
    for spec in iter_settings():
        assert spec.help, spec.key
        assert spec.env.startswith("EDGE_")
        assert spec.flag in parser_help
        assert spec.env in parser_help


def test_cli_reports_bad_setting_with_exit_2(capsys):
    assert main(["--batch-max-size", "-1"]) == 2
    assert "batch.max_size" in capsys.readouterr().err


def test_flag_aliases_from_the_issue_exist():
    args = vars(
        build_parser().parse_args(
            [
                "--broker",
                "mqtt://h:1",
                "--runtime-id",
                "node-a",
                "--metrics-port",
                "9",
                "--model",
                "x.tflite",
            ]
        )
    )
    assert args == {
        "mqtt.broker": "mqtt://h:1",
        "runtime_id": "node-a",
        "metrics.port": "9",
        "model.path": "x.tflite",
        "config": None,
    }


@pytest.mark.parametrize(
    ("version", "transport", "layout", "socket"),
    [
        ("1.4", "mqtt", "1.4", "/etc/kubeedge/dmi.sock"),
        ("1.14", "mqtt", "1.4", "/etc/kubeedge/dmi.sock"),
        ("1.15", "dmi", "1.4", "/etc/kubeedge/dmi.sock"),
        ("1.17", "dmi", "1.17", "/etc/kubeedge/dmi.sock"),
        ("v1.23.1", "dmi", "1.17", "/etc/kubeedge"),
    ],
)
def test_the_kubeedge_version_decides_transport_layout_and_socket(
    version, transport, layout, socket
):
    settings = load_settings({"EDGE_TWIN_KUBEEDGE_VERSION": version})
    assert settings.twin.transport.value == transport
    assert settings.twin.layout.value == layout
    assert settings.dmi.edgecore_socket == socket


def test_the_old_transport_and_layout_keys_still_win_with_a_deprecation_line(caplog):
    settings = load_settings({"EDGE_TWIN_KUBEEDGE_VERSION": "1.23", "EDGE_TWIN_LAYOUT": "1.4"})
    assert settings.twin.layout.value == "1.4"
    assert settings.twin.transport.value == "dmi"
    assert "twin.layout is deprecated" in caplog.text


def test_a_kubeedge_release_older_than_1_4_is_refused():
    with pytest.raises(ConfigError, match=r"twin\.kubeedge_version"):
        load_settings({"EDGE_TWIN_KUBEEDGE_VERSION": "1.3"})
