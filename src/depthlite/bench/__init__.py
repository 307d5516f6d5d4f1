"""``depthlite bench``: latency, throughput, memory and cold start per backend and precision.

Each configuration is measured in a process of its own (``worker``), one after another, so peak
memory is per configuration and no measurement runs beside another.
"""
