"""Recipes: YAML mapping, path resolution, and one-line errors that name a misspelled or invalid field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.data import Recipe, RecipeError
from edgeopt.errors import ConfigError, DataError


def test_from_yaml_resolves_paths_against_the_recipe(tmp_path: Path, make_recipe) -> None:
    sub = tmp_path / "calibration"
    sub.mkdir()
    recipe = Recipe.from_yaml(
        make_recipe(
            sub,
            "source: ../data/mnist\nclasses_from: classes.txt\nsplit: {start: -9000}\n"
            "preprocess: {scale: 0.00392156862745098, mean: 0.1307, std: 0.3081, layout: NCHW, resize: [32, 30]}\n",
        )
    )
    assert recipe.source == str(tmp_path / "data" / "mnist")
    assert recipe.classes_from == str(sub / "classes.txt")
    assert recipe.splits()[0].as_slice() == slice(-9000, None)
    assert recipe.preprocess.resize == (32, 30)
    assert recipe.preprocess.layout == "NCHW"
    assert recipe.format == "auto" and recipe.seed == 0 and recipe.shuffle is False and recipe.limit is None


def test_absolute_source_is_kept(tmp_path: Path, make_recipe) -> None:
    recipe = Recipe.from_yaml(
        make_recipe(tmp_path, "source: /data/x.npz\nsplit: [{stop: 10}, {start: 20, stop: 30}]\n")
    )
    assert recipe.source == "/data/x.npz"
    assert [s.as_slice() for s in recipe.splits()] == [slice(None, 10), slice(20, 30)]


@pytest.mark.parametrize(
    ("text", "field", "suggestion"),
    [
        ("sorce: a\n", "sorce", "source"),
        ("source: a\npreprocess: {scal: 0.5}\n", "preprocess.scal", "scale"),
        ("source: a\nsplit: {strt: 5}\n", "split.strt", "start"),
        ("source: a\nshufle: true\n", "shufle", "shuffle"),
    ],
)
def test_misspelled_field_is_named(tmp_path: Path, make_recipe, text: str, field: str, suggestion: str) -> None:
    path = make_recipe(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        Recipe.from_yaml(path)
    message = str(info.value)
    assert f"unknown field '{field}'" in message and f"did you mean '{suggestion}'" in message
    assert str(path) in message and "\n" not in message
    assert isinstance(info.value, DataError) and isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"source": "a", "format": "tar"}, "field 'format'"),
        ({"source": "a", "limit": -1}, "field 'limit'"),
        ({"source": "a", "preprocess": {"resize": "big"}}, "field 'preprocess.resize'"),
        ({"source": "a", "preprocess": {"std": 0}}, "std must not be 0"),
        ({"source": "a", "preprocess": {"layout": "CHW"}}, "field 'preprocess.layout'"),
        ({"source": "a", "split": 5}, "field 'split'"),
        ({"format": "npz"}, "missing field 'source'"),
    ],
)
def test_invalid_values_are_named(data: dict, needle: str) -> None:
    with pytest.raises(RecipeError, match=needle) as info:
        Recipe.from_dict(data)
    assert info.value.fix and "\n" not in str(info.value)


def test_bad_yaml_and_empty_and_missing(tmp_path: Path, make_recipe) -> None:
    with pytest.raises(RecipeError, match="not valid YAML"):
        Recipe.from_yaml(make_recipe(tmp_path, "source: [unclosed\n", "bad.yaml"))
    with pytest.raises(RecipeError, match="is empty"):
        Recipe.from_yaml(make_recipe(tmp_path, "", "empty.yaml"))
    with pytest.raises(RecipeError, match="must be a mapping"):
        Recipe.from_yaml(make_recipe(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(DataError, match="recipe file .*nope.yaml does not exist"):
        Recipe.from_yaml(tmp_path / "nope.yaml")


def test_shipped_recipes_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "calibration"
    recipes = {p.stem: Recipe.from_yaml(p) for p in sorted(folder.glob("*.yaml"))}
    assert {"mnist", "mnist-calib", "mnist-eval", "cifar10-train", "cifar10-test"} <= set(recipes)
    assert {"imagenet-calib", "imagenet-eval"} <= set(recipes)
    assert recipes["mnist-eval"].splits()[0].start == -9000
    assert recipes["imagenet-calib"].preprocess.center_crop == 224
    assert all(Path(r.source).is_absolute() for r in recipes.values())
