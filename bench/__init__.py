"""``make bench``: measured throughput, latency and payload figures (see bench/__main__.py)."""
