"""KubeEdge played on one machine: the real edgecore as a process, the cloud half it talks to.

``EdgeNode`` runs a real edgecore (built from KubeEdge's source by ``scripts/build-edgecore``) and
our ``CloudHub``, which sends what cloudcore's device controller sends (cloudcore needs a
Kubernetes API server and cannot run here). For tests and the demo; production programs use
``kubeedge_twin`` only.
"""

from kubeedge_sim.cloudhub import CloudHub, Report
from kubeedge_sim.edgecore import CURRENT, LEGACY, RealEdgecore, is_current
from kubeedge_sim.node import EdgeNode, load_documents

__all__ = [
    "CURRENT",
    "LEGACY",
    "CloudHub",
    "EdgeNode",
    "RealEdgecore",
    "Report",
    "is_current",
    "load_documents",
]
