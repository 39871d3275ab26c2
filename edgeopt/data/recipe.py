"""The data recipe: where the data is, which part of it to use and how to preprocess it (a YAML file maps onto it)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.data.preprocess import Preprocess
from edgeopt.errors import ConfigError, DataError


class RecipeError(DataError, ConfigError):
    """A recipe is invalid: a config problem about data, so it is caught as either."""


class Split(BaseModel):
    """A Python-style index range over the source order (negative indices count from the end)."""

    model_config = ConfigDict(extra="forbid")

    start: int | None = None
    stop: int | None = None

    def as_slice(self) -> slice:
        """The range as a Python slice."""
        return slice(self.start, self.stop)


class Recipe(BaseModel):
    """Data source, selection (split, shuffle, limit) and preprocessing: one declaration for every use of the data."""

    model_config = ConfigDict(extra="forbid")

    source: str
    format: Literal["auto", "npz", "mnist", "imagefolder"] = "auto"
    preprocess: Preprocess = Field(default_factory=Preprocess)
    split: Split | list[Split] | None = None
    shuffle: bool = False
    seed: int = 0
    limit: int | None = Field(default=None, ge=0)
    input_name: str | None = None
    classes_from: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | os.PathLike[str] | None = None) -> Recipe:
        """Build a recipe from plain data, resolving relative paths against `base_dir`; errors name the field."""
        if not isinstance(data, Mapping):
            raise RecipeError(
                f"a recipe must be a mapping of fields, not {type(data).__name__}", "write `source: PATH` and so on"
            )
        values = dict(data)
        if base_dir is not None:
            for key in ("source", "classes_from"):
                if isinstance(values.get(key), str):
                    values[key] = _resolve(values[key], Path(base_dir))
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _recipe_error(exc, where="recipe") from exc

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read a recipe YAML file; relative paths in it are resolved against the file's folder."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"recipe file {path} does not exist", "check the path")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise RecipeError(f"recipe {path} is not valid YAML: {detail}", "fix the YAML syntax") from exc
        if data is None:
            raise RecipeError(f"recipe {path} is empty", "write at least `source: PATH`")
        try:
            return cls.from_dict(data, base_dir=path.absolute().parent)
        except RecipeError as exc:
            raise RecipeError(f"recipe {path}: {exc.problem}", exc.fix) from exc

    def splits(self) -> list[Split]:
        """The split as a list of ranges (empty when the whole source is used)."""
        if self.split is None:
            return []
        return self.split if isinstance(self.split, list) else [self.split]


def _resolve(value: str, base_dir: Path) -> str:
    """A path from a recipe, made absolute against the recipe's folder."""
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


_MODELS: dict[str, type[BaseModel]] = {"preprocess": Preprocess, "split": Split}


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    """Valid field names of the model that holds the field at `loc`."""
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        model = _MODELS.get(part, model)
    return list(model.model_fields)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """Drop pydantic's union-member tags (`int`, `tuple[int, int]`, `constrained-int`, ...) from an error location."""
    tags = {"int", "float", "str", "bool", "list", "tuple", "none", "Split"}
    return tuple(str(p) for p in loc if not (isinstance(p, str) and (p in tags or "[" in p or "-" in p)))


_VALUE_HINTS = {
    "resize": "an int for the shorter side, or [h, w]",
    "center_crop": "an int, or [h, w]",
    "mean": "a number, or one number per channel",
    "std": "a non-zero number, or one per channel",
    "split": "{start: INT, stop: INT} or a list of them",
}
_CONTAINER_ERRORS = {"list_type", "tuple_type", "dict_type", "model_type", "model_attributes_type"}


def _relevant_errors(exc: ValidationError) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Errors by field, without the complaints of union members the value was clearly not meant for."""
    errors = [(_clean_loc(err["loc"]), dict(err)) for err in exc.errors()]
    kept: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for loc, err in errors:
        deeper = any(len(other) > len(loc) and other[: len(loc)] == loc for other, _ in errors)
        specific = any(other == loc and e["type"] not in _CONTAINER_ERRORS for other, e in errors)
        if deeper or (specific and err["type"] in _CONTAINER_ERRORS) or any(loc == k for k, _ in kept):
            continue
        kept.append((loc, err))
    return kept


def _recipe_error(exc: ValidationError, where: str) -> RecipeError:
    """One line naming every invalid field of a recipe, and how to fix the first unknown one (or else the first)."""
    problems: list[str] = []
    fixes: list[str] = []
    for loc, err in _relevant_errors(exc):
        name = ".".join(loc) or where
        if err["type"] == "extra_forbidden":
            valid = _fields_at(tuple(p for p in loc if not p.isdigit()))
            problems.append(f"unknown field '{name}'")
            close = difflib.get_close_matches(loc[-1], valid, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            fixes.insert(0, f"{hint}valid fields here: {', '.join(valid)}")
        elif err["type"] == "missing":
            problems.append(f"missing field '{name}'")
            fixes.append(f"add '{name}' to the {where}")
        else:
            problems.append(f"field '{name}': {err['msg']}")
            hint = _VALUE_HINTS.get(next((p for p in reversed(loc) if not p.isdigit()), ""))
            fixes.append(f"correct '{name}' in the {where}" + (f" (expected {hint})" if hint else ""))
    return RecipeError(f"invalid {where}: " + "; ".join(problems), fixes[0] if fixes else None)
