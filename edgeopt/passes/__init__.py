"""Passes: typed model transformations, grouped by the artifact kind they take."""

from edgeopt.passes.base import Pass, PassConfig, PassContext
from edgeopt.passes.registry import REGISTRY, register_pass

__all__ = ["REGISTRY", "Pass", "PassConfig", "PassContext", "register_pass"]
