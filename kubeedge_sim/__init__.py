"""KubeEdge played on one machine, for tests and the demo.

Production programs use ``kubeedge_twin`` only.

- ``kubeedge_sim.node.EdgeNode``: KubeEdge's real edgecore (built from its source by
  ``scripts/build-edgecore``) run as a process, connected to ``kubeedge_sim.cloudhub.CloudHub``,
  which sends what cloudcore's device controller sends (cloudcore needs a Kubernetes API server
  and cannot run here). CLI: ``kubeedge-sim``.
- ``kubeedge_sim.standin.EdgecoreStandIn``: our edgecore stand-in (DeviceTwin over MQTT, and
  edgecore's DMI side in ``kubeedge_sim.dmi_edgecore``), with ``engine`` and ``store``. CLI:
  ``kubeedge-twin-sim``.
- ``kubeedge_sim.cloud``: the simulated cloud's input and twin reads, for the cloud-side tools.

Nothing is imported here: ``kubeedge_sim.cloud`` must load with paho alone (the trainer's
``push --backend local``), the CloudHub needs aiohttp.
"""
