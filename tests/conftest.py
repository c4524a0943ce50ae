"""Test-wide settings: offline hub, one thread per worker, a fixed seed."""

from __future__ import annotations

import os

# Before anything imports timm or torch: nothing may be fetched from a hub in tests, and
# each xdist worker gets one thread so two workers share the two cores fairly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
