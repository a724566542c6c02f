"""The KubeEdge DeviceTwin protocol: topics, typed twin messages, a twin client, a stand-in."""

__all__: list[str] = []
