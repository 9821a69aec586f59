"""Throughput benchmarks (`umm bench ...`): the real train step vs the machine's matmul peak."""
