"""Lazy package exports (PEP 562): a name is imported from its submodule on first use, so
importing a package stays cheap (no torch until something needs it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` of a package with lazy exports.

    Args:
        package: the package's `__name__`.
        exports: exported name -> submodule (relative to `package`) that defines it.

    Returns:
        (__getattr__, __dir__), to assign in the package's `__init__`.

    Example:
        _EXPORTS = {"Predictor": "predictor"}
        __all__ = sorted(_EXPORTS)
        __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        module = importlib.import_module(package)
        return sorted({*vars(module), *exports})

    return __getattr__, __dir__


def moved_names(old: str, new: Mapping[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of a module whose names moved: each is imported from its new
    module on first use, with a `DeprecationWarning` that names the new place.

    Such alias modules import upwards only lazily and by name, so the layer rule of
    docs/architecture.md lists them as its one exemption.

    Args:
        old: the alias module's `__name__`.
        new: name -> the module (absolute) that defines it now.

    Returns:
        The module-level `__getattr__`.
    """
    import warnings

    def __getattr__(name: str) -> Any:
        if name not in new:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} moved to {new[name]}.{name}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new[name]), name)

    return __getattr__
