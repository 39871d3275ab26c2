"""The data layer: recipes, readers and preprocessing behind one streaming DataSource."""

from edgeopt.data.loading import load_data, open_recipe
from edgeopt.data.preprocess import Preprocess
from edgeopt.data.recipe import Recipe, RecipeError, Split
from edgeopt.data.source import Batch, DataSource

__all__ = ["Batch", "DataSource", "Preprocess", "Recipe", "RecipeError", "Split", "load_data", "open_recipe"]
