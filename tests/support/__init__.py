"""What the tests share: a broker, runtimes, devices, KubeEdge sides, one poller."""
