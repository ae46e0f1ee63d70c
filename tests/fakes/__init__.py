"""Local servers that answer like the cloud services Spotcheck talks to (for tests and benchmarks)."""
