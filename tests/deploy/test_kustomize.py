"""Every overlay renders with `kubectl kustomize`; core kinds validate against the Kubernetes
schemas, KubeEdge kinds against KubeEdge's CRDs of their API version; the runtime's ConfigMap
and the mappers' options stay in sync with the code."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from edge_runtime.settings import iter_settings, load_settings
from mappers.__main__ import build_parser as mapper_parser
from tests.support.kubeedge import crd_schema
from tests.support.paths import REPO

KUBECTL = Path(sys.executable).parent / "kubectl"
OVERLAYS = {"kubeedge-1.4": "v1alpha2", "kubeedge-current": "v1beta1"}
KUBERNETES_VERSION = "1.30.0"


@functools.cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO / "deploy" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates(overlay):
    documents = rendered(overlay)
    kinds = {d["kind"] for d in documents}
    assert {
        "DaemonSet",
        "Deployment",
        "Job",
        "Service",
        "ConfigMap",
        "Device",
        "DeviceModel",
    } <= kinds
    for document in documents:
        group_version = document["apiVersion"]
        if group_version.startswith("devices.kubeedge.io/"):
            version = group_version.split("/")[1]
            assert version == OVERLAYS[overlay]
            jsonschema.validate(document, crd_schema(document["kind"], version))
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert document["metadata"].get("namespace", "emotion") == "emotion"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_workloads_run_on_edge_nodes_next_to_the_broker(overlay):
    workloads = {**by_kind(overlay, "DaemonSet"), **by_kind(overlay, "Deployment")}
    for name in ("edge-runtime", "camera-mapper", "mosquitto"):
        spec = workloads[name]["spec"]["template"]["spec"]
        assert spec["nodeSelector"]["node-role.kubernetes.io/edge"] == ""
        assert spec["hostNetwork"] is True
        assert any(t["key"] == "node-role.kubernetes.io/edge" for t in spec["tolerations"])
    runtime = workloads["edge-runtime"]["spec"]["template"]["spec"]["containers"][0]
    assert runtime["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert runtime["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert runtime["resources"]["limits"]["memory"]
    store = workloads["model-store"]["spec"]["template"]["spec"]
    term = store["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["operator"] == "DoesNotExist"
    assert "model-store" in by_kind(overlay, "Service")
    assert "trainer" in by_kind(overlay, "Job")


def test_runtime_config_map_holds_every_setting_and_loads():
    env_file = REPO / "deploy" / "base" / "edge-runtime.env"
    environ = {}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            environ[key] = value
    every = {spec.env for spec in iter_settings()}
    per_pod = {"EDGE_RUNTIME_ID"}  # the node name, from the downward API
    assert set(environ) == every - per_pod
    settings = load_settings(environ, None, {})
    assert settings.twin.namespace == "emotion"  # where the overlays put the Devices
    for overlay in OVERLAYS:
        (config,) = (
            d for n, d in by_kind(overlay, "ConfigMap").items() if n.startswith("edge-runtime")
        )
        assert set(config["data"]) == every - per_pod
        load_settings(config["data"], None, {})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mapper_config_map_names_only_mapper_options(overlay):
    import argparse

    parser = mapper_parser()
    actions = list(parser._actions)
    for action in parser._actions:  # the camera and results commands' own options
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                actions += command._actions
    options = {action.dest.upper() for action in actions if action.option_strings}
    (config,) = (d for n, d in by_kind(overlay, "ConfigMap").items() if n.startswith("mapper"))
    keys = {key.removeprefix("MAPPER_") for key in config["data"]}
    assert keys <= options
    deployment = by_kind(overlay, "Deployment")["camera-mapper"]["spec"]["template"]["spec"]
    for container in deployment["containers"]:
        for env in container.get("env", []):
            assert env["name"].removeprefix("MAPPER_") in options
    runtime = next(
        d for n, d in by_kind(overlay, "ConfigMap").items() if n.startswith("edge-runtime")
    )
    twin = load_settings(runtime["data"], None, {}).twin
    assert config["data"]["MAPPER_KUBEEDGE_VERSION"] == twin.kubeedge_version  # one release


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_edges_offload_to_the_clouds_inference_service_which_scales(overlay):
    (cloud,) = (
        d
        for n, d in by_kind(overlay, "ConfigMap").items()
        if n.startswith("cloud-inference-config")
    )
    settings = load_settings({**cloud["data"], "EDGE_RUNTIME_ID": "cloud-inference-0"}, None, {})
    assert settings.mqtt.broker == ""  # its HTTP doors alone
    assert not settings.twin.enabled
    (edge,) = (d for n, d in by_kind(overlay, "ConfigMap").items() if n.startswith("edge-runtime"))
    edge_settings = load_settings(edge["data"], None, {})
    service = by_kind(overlay, "Service")["cloud-inference"]
    (port,) = service["spec"]["ports"]
    assert edge_settings.offload.url == f"http://cloud-inference.emotion.svc:{port['port']}"
    assert port["port"] == settings.http.port
    # the same token on both sides, from one Secret
    assert edge_settings.offload.token_file == settings.http.token_file
    deployment = by_kind(overlay, "Deployment")["cloud-inference"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    runtime = by_kind(overlay, "DaemonSet")["edge-runtime"]["spec"]["template"]["spec"]
    edge_volumes = {v["name"]: v for v in runtime["volumes"]}
    assert volumes["token"]["secret"] == edge_volumes["cloud-token"]["secret"]
    store = by_kind(overlay, "Deployment")["model-store"]["spec"]["template"]["spec"]
    args = store["containers"][0]["args"]
    assert args[args.index("--intake-token-file") + 1] == settings.http.token_file
    assert edge_settings.samples.url == "http://model-store.emotion.svc:8000"
    assert edge_settings.samples.token_file == settings.http.token_file
    (autoscaler,) = by_kind(overlay, "HorizontalPodAutoscaler").values()
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "cloud-inference"
