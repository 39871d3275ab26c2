"""Packaging: every package folder is listed in pyproject.toml, and the wheel ships targets and recipes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib


def _pyproject(repo_root: Path) -> dict:
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def test_every_package_folder_is_listed(repo_root: Path) -> None:
    listed = set(_pyproject(repo_root)["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(p.parent.relative_to(repo_root).parts)
        for p in (repo_root / "edgeopt").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    missing = sorted(folders - listed)
    assert not missing, f"package folders missing from [tool.setuptools] packages: {missing}"
    for name in folders:
        assert (repo_root / Path(*name.split(".")) / "__init__.py").is_file(), f"{name} has no __init__.py"


def test_data_folders_are_mapped(repo_root: Path) -> None:
    setuptools = _pyproject(repo_root)["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"edgeopt._data.targets": "targets",
                                         "edgeopt._data.calibration": "calibration"}
    assert (repo_root / "targets" / "ort-cpu.yaml").is_file()
    assert (repo_root / "calibration" / "mnist-eval.yaml").is_file()


def test_console_script(repo_root: Path) -> None:
    assert _pyproject(repo_root)["project"]["scripts"] == {"edgeopt": "edgeopt.cli:main"}


def test_wheel_contents(repo_root: Path, tmp_path: Path) -> None:
    # Build from a copy of the sources: an in-tree build would leave build/ and egg-info changes in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, src / name)
    for name in ("edgeopt", "targets", "calibration"):
        shutil.copytree(repo_root / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=300, cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("edgeopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "edgeopt/_data/targets/ort-cpu.yaml" in names
    recipes = {Path(n).name for n in names if n.startswith("edgeopt/_data/calibration/")}
    assert {"mnist-eval.yaml", "mnist-calib.yaml", "cifar10-test.yaml", "imagenet-eval.yaml"} <= recipes
    assert "edgeopt/cli.py" in names and "edgeopt/passes/onnx/simplify.py" in names
    assert not any(n.startswith("tests/") for n in names)
