"""The ViT-L cards (DPT-Large, Depth Anything V2 Large) against the original code.

The network check of test_conformance.py (tests/conformancekit.py; only the small Depth
Anything V2 cards have an end-to-end fixture), in a file of its own so that a parallel test
run converts these 1.3-1.4 GB networks on one worker beside the other cards.
"""

from __future__ import annotations

from conformancekit import LARGE, fp32_backends_test

test_every_fp32_backend_reproduces_the_original_network = fp32_backends_test(list(LARGE))
