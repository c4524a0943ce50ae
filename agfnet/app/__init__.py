"""The web app: a FastAPI server and one HTML page around `agfnet.inference.Predictor`.

Names are imported lazily (PEP 562), so `import agfnet.app` pulls in neither torch nor
FastAPI.

Example:
    from agfnet.app import AppSettings, create_app
    app = create_app("runs/t/checkpoints/best.ckpt", AppSettings(max_upload_bytes=10_000_000))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AppSettings": "settings",
    "create_app": "server",
    "app_from_env": "server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agfnet.app' has no attribute '{name}'")
    return getattr(importlib.import_module(f"agfnet.app.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
