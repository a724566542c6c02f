"""KubeEdge's DMI v1beta1 API (api.proto from kubeedge v1.23.1) and its generated code."""
