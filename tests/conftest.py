"""Test-wide settings: offline hub, one thread per worker, a fixed seed."""

from __future__ import annotations

import os

# Before anything imports timm or torch: nothing may be fetched from a hub in tests, and
# each xdist worker gets one thread so two workers share the two cores fairly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Lightning attaches a StreamHandler to sys.stderr when first imported. Imported inside a
# typer CliRunner call, that handler would keep the runner's stream, closed once the call
# returns, and every later Lightning log line in this worker would print "Logging error".
import lightning.pytorch  # noqa: F401
