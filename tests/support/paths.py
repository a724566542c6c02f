"""Where the tests find the repository's files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# KubeEdge's interface files, vendored by tag (third_party/kubeedge/README.md).
KUBEEDGE_FILES = REPO / "third_party" / "kubeedge"
