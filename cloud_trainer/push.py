"""Push a registered version to edge runtimes by setting their desired twins.

Two backends set and read twins: **Kubernetes** (patch the Device CR: ``status.twins[]`` for
``devices.kubeedge.io/v1alpha2``, ``spec.properties[]`` for ``v1beta1``, SPEC §3) and
**local** (the edgecore stand-in over MQTT). A rollout can go to ``canary`` devices first:
only when they report ``serving`` the new version (their runtimes ready, their error rate
over a soak period within bounds, and, if asked, their reported ``offload_rate`` not risen)
does it continue; otherwise the canaries get their previous desired values back.
"""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cloud_trainer.registry import MANIFEST_NAME, read_manifest
from cloud_trainer.signing import signature_of
from edgeinfer.twins import (
    MODEL_SHA256,
    MODEL_SIGNATURE,
    MODEL_STATUS,
    MODEL_URI,
    MODEL_VERSION,
    OFFLOAD_RATE,
)

_LOGGER = logging.getLogger(__name__)

GROUP = "devices.kubeedge.io"
API_VERSIONS = ("v1alpha2", "v1beta1")


class RolloutFailed(Exception):
    """A canary did not reach the new version; the canaries were rolled back."""


def desired_twins(registry: Path, name: str, version: str, store_url: str) -> dict[str, str]:
    """The desired ``model_*`` twin values for ``version`` served from ``store_url``.

    The signature is included when the version was signed (``manifest.sig``).

    Raises:
        FileNotFoundError: if the version is not registered.
        ValueError: if the manifest names another version.
    """
    directory = registry / name / version
    path = directory / MANIFEST_NAME
    manifest = read_manifest(path)
    if manifest.version != version:
        raise ValueError(f"{path} says version {manifest.version}")
    values = {
        MODEL_VERSION: version,
        MODEL_URI: f"{store_url.rstrip('/')}/{name}/{version}/{MANIFEST_NAME}",
        MODEL_SHA256: hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    signature = signature_of(directory)
    if signature:
        values[MODEL_SIGNATURE] = signature
    return values


def describe(values: Mapping[str, str]) -> str:
    """One line for logs."""
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))


# --- Device CR patches (pure functions, checked with kubectl patch --local) ---


def device_desired(device: Mapping[str, Any]) -> dict[str, str]:
    """The desired twin values a Device CR holds, by name (either API version)."""
    api_version = str(device.get("apiVersion", ""))
    if api_version.endswith("/v1alpha2"):
        entries = (device.get("status") or {}).get("twins") or []
        return {
            e["propertyName"]: str((e.get("desired") or {}).get("value", ""))
            for e in entries
            if e.get("desired") is not None
        }
    entries = (device.get("spec") or {}).get("properties") or []
    return {
        e["name"]: str((e.get("desired") or {}).get("value", ""))
        for e in entries
        if e.get("desired") is not None
    }


def device_patch(device: Mapping[str, Any], values: Mapping[str, str]) -> list[dict[str, Any]]:
    """A JSON patch (RFC 6902) setting desired ``values`` on a Device CR.

    Each replaced entry is guarded by a ``test`` of its name, so a concurrent reorder of
    the list makes the patch fail instead of writing the wrong twin.

    Raises:
        ValueError: for an unknown API version, or a v1beta1 property missing from the spec
            (v1beta1 properties must exist in the DeviceModel; they are not invented here).
    """
    api_version = str(device.get("apiVersion", ""))
    operations: list[dict[str, Any]] = []
    if api_version == f"{GROUP}/v1alpha2":
        status = device.get("status") or {}
        twins = status.get("twins")
        if "status" not in device:
            operations.append({"op": "add", "path": "/status", "value": {"twins": []}})
        elif twins is None:
            operations.append({"op": "add", "path": "/status/twins", "value": []})
        index = {t["propertyName"]: i for i, t in enumerate(twins or [])}
        for name, value in values.items():
            desired = {"value": value, "metadata": {"type": "string"}}
            if name in index:
                i = index[name]
                operations.append(
                    {"op": "test", "path": f"/status/twins/{i}/propertyName", "value": name}
                )
                operations.append(
                    {"op": "add", "path": f"/status/twins/{i}/desired", "value": desired}
                )
            else:
                operations.append(
                    {
                        "op": "add",
                        "path": "/status/twins/-",
                        "value": {"propertyName": name, "desired": desired},
                    }
                )
        return operations
    if api_version == f"{GROUP}/v1beta1":
        properties = (device.get("spec") or {}).get("properties") or []
        index = {p["name"]: i for i, p in enumerate(properties)}
        for name, value in values.items():
            if name not in index:
                raise ValueError(
                    f"Device {device.get('metadata', {}).get('name')} has no property {name}"
                )
            i = index[name]
            operations.append({"op": "test", "path": f"/spec/properties/{i}/name", "value": name})
            operations.append(
                {"op": "add", "path": f"/spec/properties/{i}/desired", "value": {"value": value}}
            )
        return operations
    raise ValueError(f"not a KubeEdge Device API version: {api_version!r}")


def reported_from(objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Reported twin values from a Device (v1alpha2, v1beta1 ≤ 1.22) or DeviceStatus (≥ 1.23)."""
    values: dict[str, str] = {}
    for obj in objects:
        for twin in (obj.get("status") or {}).get("twins") or []:
            reported = twin.get("reported") or {}
            if "value" in reported:
                values[twin["propertyName"]] = str(reported["value"])
    return values


# --- backends ---


class TwinBackend(Protocol):
    """Reads and writes a device's twins."""

    def desired(self, device: str) -> dict[str, str]:
        """Current desired values."""
        ...

    def reported(self, device: str) -> dict[str, str]:
        """Current reported (actual) values."""
        ...

    def set_desired(self, device: str, values: Mapping[str, str]) -> None:
        """Set desired values."""
        ...


class LocalBackend:
    """The simulated cloud (edgecore stand-in or kubeedge-sim) and edgecore.

    Desired values go to the simulated cloud's MQTT input; edgecore's ``twin/get`` reads twins.
    """

    def __init__(self, broker: str) -> None:
        self._broker = broker

    def desired(self, device: str) -> dict[str, str]:
        """Desired (``expected``) values from edgecore's twin document."""
        from kubeedge_sim.cloud import fetch_twins, twin_values

        return twin_values(fetch_twins(self._broker, device), "expected")

    def reported(self, device: str) -> dict[str, str]:
        """Reported (``actual``) values from edgecore's twin document."""
        from kubeedge_sim.cloud import fetch_twins, twin_values

        return twin_values(fetch_twins(self._broker, device), "actual")

    def set_desired(self, device: str, values: Mapping[str, str]) -> None:
        """Edit the Device in the simulated cloud (``kubeedge_sim.cloud.desired_topic``)."""
        from kubeedge_sim.cloud import publish_cloud_update

        publish_cloud_update(self._broker, device, values)


class KubernetesBackend:
    """Device CRs through the Kubernetes API (kubeconfig, or in-cluster config)."""

    def __init__(self, namespace: str, api_version: str, api: Any | None = None) -> None:
        if api_version not in API_VERSIONS:
            raise ValueError(f"api_version must be one of {API_VERSIONS}")
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            api = client.CustomObjectsApi()
        self._api: Any = api
        self._namespace = namespace
        self._version = api_version

    def device(self, device: str) -> dict[str, Any]:
        """The Device CR."""
        obj = self._api.get_namespaced_custom_object(
            GROUP, self._version, self._namespace, "devices", device
        )
        return dict(obj)

    def desired(self, device: str) -> dict[str, str]:
        """Desired values from the Device CR."""
        return device_desired(self.device(device))

    def reported(self, device: str) -> dict[str, str]:
        """Reported values: the Device's status, and the DeviceStatus CR where it exists."""
        objects: list[Mapping[str, Any]] = [self.device(device)]
        if self._version == "v1beta1":
            from kubernetes.client.exceptions import ApiException

            try:
                objects.append(
                    self._api.get_namespaced_custom_object(
                        GROUP, self._version, self._namespace, "devicestatuses", device
                    )
                )
            except ApiException as exc:
                if exc.status != 404:  # DeviceStatus exists from KubeEdge 1.23 on
                    raise
        return reported_from(objects)

    def set_desired(self, device: str, values: Mapping[str, str]) -> None:
        """JSON-patch the Device CR (a list body is sent as application/json-patch+json)."""
        patch = device_patch(self.device(device), values)
        self._api.patch_namespaced_custom_object(
            GROUP, self._version, self._namespace, "devices", device, patch
        )


# --- rollout ---


@dataclass(frozen=True, slots=True)
class CanaryPolicy:
    """How a canary is judged."""

    count: int = 0  # 0: no canary, everyone at once
    timeout_s: float = 300.0
    poll_s: float = 2.0
    ready_url: str = ""  # e.g. http://{device}:9100/readyz; "" skips the readiness check
    metrics_url: str = ""  # e.g. http://{device}:9100/metrics; "" skips the error-rate check
    soak_s: float = 0.0  # how long canaries serve before their error rate is judged
    max_error_ratio: float = 0.01  # non-OK answers / answers during the soak
    # Roll back when a canary's reported offload_rate after the soak is above the one before
    # the push by more than this (None: not judged). The edge model got less sure of itself.
    max_offload_rate_rise: float | None = None


def request_counts(metrics_text: str) -> tuple[float, float]:
    """(answered, not OK) from a runtime's Prometheus ``edge_requests_total{status}``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = failed = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "edge_requests":
            continue
        for sample in family.samples:
            if sample.name == "edge_requests_total":
                total += sample.value
                failed += sample.value if sample.labels.get("status") != "OK" else 0.0
    return total, failed


def _scrape(url: str) -> tuple[float, float]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (operator URL)
        return request_counts(response.read().decode("utf-8"))


def _soak(devices: Sequence[str], policy: CanaryPolicy) -> str:
    """Let canaries serve for ``soak_s``; "" if their error ratio stayed acceptable."""
    if policy.soak_s <= 0:
        return ""
    urls = {d: policy.metrics_url.format(device=d) for d in devices if policy.metrics_url}
    try:
        before = {d: _scrape(url) for d, url in urls.items()}
        time.sleep(policy.soak_s)
        after = {d: _scrape(url) for d, url in urls.items()}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot read canary metrics: {exc}"
    for device in urls:
        answered = after[device][0] - before[device][0]
        failed = after[device][1] - before[device][1]
        if answered and failed / answered > policy.max_error_ratio:
            return (
                f"{device} answered {failed:.0f} of {answered:.0f} requests with an error "
                f"during the {policy.soak_s:.0f} s soak (limit {policy.max_error_ratio:.1%})"
            )
    return ""


def _rate(reported: Mapping[str, str]) -> float | None:
    try:
        return float(reported.get(OFFLOAD_RATE, ""))
    except ValueError:
        return None


def _offload_judged(
    backend: TwinBackend, before: Mapping[str, float | None], policy: CanaryPolicy
) -> str:
    """Why a canary's offload rate rose by more than the policy allows ("" if none did)."""
    rise = policy.max_offload_rate_rise
    if rise is None:
        return ""
    for device, old in before.items():
        new = _rate(backend.reported(device))
        if new is None:
            return f"{device} reported no offload_rate after the soak"
        if old is not None and new > old + rise:
            return (
                f"{device} found {new:.1%} of faces hard after the push, {old:.1%} before "
                f"(allowed rise {rise:.1%})"
            )
    return ""


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (operator URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_serving(
    backend: TwinBackend,
    before: Mapping[str, str],
    version: str,
    policy: CanaryPolicy,
) -> str:
    """Wait until every device serves ``version``; return "" or why it failed.

    ``before`` holds each device's ``model_status`` before the push: a failure reported
    before the push is not this push's failure.
    """
    deadline = time.monotonic() + policy.timeout_s
    pending = list(before)
    while pending:
        for device in list(pending):
            reported = backend.reported(device)
            status = reported.get(MODEL_STATUS, "")
            if status.startswith("failed") and status != before[device]:
                return f"{device} reported {status}"
            if reported.get(MODEL_VERSION) == version and status == "serving":
                if policy.ready_url and not _ready(policy.ready_url.format(device=device)):
                    continue
                _LOGGER.info("%s serves %s", device, version)
                pending.remove(device)
        if pending and time.monotonic() > deadline:
            return f"{', '.join(pending)} did not serve {version} within {policy.timeout_s:.0f} s"
        if pending:
            time.sleep(policy.poll_s)
    return ""


def rollout(
    backend: TwinBackend,
    devices: Sequence[str],
    values: Mapping[str, str],
    policy: CanaryPolicy,
    log: Callable[[str], None] = print,
) -> None:
    """Set ``values`` on ``devices``, canaries first.

    Raises:
        RolloutFailed: if a canary failed; the canaries were restored, the rest untouched.
    """
    canaries = list(devices[: policy.count]) if policy.count else []
    rest = list(devices[len(canaries) :])
    if canaries:
        previous = {}
        for device in canaries:
            desired = backend.desired(device)  # one twin read per device, not per value
            previous[device] = {name: desired.get(name, "") for name in values}
        reported = {device: backend.reported(device) for device in canaries}
        before = {device: reported[device].get(MODEL_STATUS, "") for device in canaries}
        rates = {device: _rate(reported[device]) for device in canaries}
        for device in canaries:
            log(f"canary {device}: {describe(values)}")
            backend.set_desired(device, values)
        problem = (
            _wait_serving(backend, before, values[MODEL_VERSION], policy)
            or _soak(canaries, policy)
            or _offload_judged(backend, rates, policy)
        )
        if problem:
            for device, old in previous.items():
                log(f"rollback {device}: {describe(old)}")
                backend.set_desired(device, old)
            raise RolloutFailed(f"canary failed: {problem}; canaries rolled back")
        log(f"canaries serve {values[MODEL_VERSION]}; continuing with {len(rest)} device(s)")
    for device in rest:
        log(f"push {device}: {describe(values)}")
        backend.set_desired(device, values)


__all__ = [
    "API_VERSIONS",
    "CanaryPolicy",
    "KubernetesBackend",
    "LocalBackend",
    "RolloutFailed",
    "TwinBackend",
    "describe",
    "desired_twins",
    "device_desired",
    "device_patch",
    "reported_from",
    "request_counts",
    "rollout",
]
