"""The README documents every setting (env name and flag) and every metric the runtime exposes."""

from __future__ import annotations

from edge_runtime.metrics import Metrics
from edge_runtime.settings import iter_settings
from tests.conftest import REPO


def test_every_setting_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for spec in iter_settings():
        assert f"`{spec.env}`" in readme, spec.env
        assert spec.flag in readme, spec.flag


def test_every_metric_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    for metric in Metrics().registry.collect():
        assert f"`{metric.name}" in readme, metric.name
