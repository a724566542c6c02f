"""KubeEdge mappers that bridge devices to edgecore's twin topics."""

__all__: list[str] = []
