"""The sample intake's contract: where edge runtimes upload hard examples, and their names.

One ``edgeinfer.v1.HardExample`` per ``POST`` to ``INTAKE_PATH`` (protobuf binary). A face is
named by the sha256 of its pixels on both sides: the edge keeps one file per face, the intake
one copy.
"""

from __future__ import annotations

import hashlib
from typing import Final

from edgeinfer.v1 import samples_pb2

INTAKE_PATH: Final = "/v1/samples"
CONTENT_TYPE: Final = "application/x-protobuf"


def example_name(example: samples_pb2.HardExample) -> str:
    """The hex sha256 of the example's pixels."""
    return hashlib.sha256(example.pixels.data).hexdigest()
