"""Explanations: Grad-CAM family maps per modality, ALL attention maps, focus metrics."""

from __future__ import annotations
