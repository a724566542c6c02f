"""KubeEdge DMI v1beta1 (gRPC over Unix sockets): a mapper building block and edgecore's side."""
