"""Alias of `agfnet.runtime.stochastic` (its old place; kept for existing imports)."""

from __future__ import annotations

from agfnet.runtime.stochastic import *  # noqa: F403
from agfnet.runtime.stochastic import __all__  # noqa: F401
