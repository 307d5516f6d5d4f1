"""PyTorch networks and the tools around them (needs the ``torch`` extra)."""
