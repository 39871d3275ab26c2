"""Exploring the accuracy-latency frontier: a declared grid of variants built through the normal plan."""

from edgeopt.explore.grid import ExploreGrid, explore_summary, resolve_grid
from edgeopt.explore.variants import explore_variants

__all__ = ["ExploreGrid", "explore_summary", "explore_variants", "resolve_grid"]
