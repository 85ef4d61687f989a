"""pyproject.toml as a build reads it: no deprecated metadata, so installing prints no
screen of setuptools warnings (issue 9: `project.license` as a TOML table)."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path
from typing import Any

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def test_the_license_is_an_spdx_expression() -> None:
    project = _pyproject()["project"]
    assert isinstance(project["license"], str), "a TOML table is deprecated by setuptools"
    assert canonicalize_license_expression(project["license"]) == project["license"]
    # PEP 639: with an SPDX license expression, license classifiers are an error.
    assert not [c for c in project.get("classifiers", []) if c.startswith("License ::")]


def test_the_build_requires_a_setuptools_that_knows_spdx_strings() -> None:
    requires = [Requirement(r) for r in _pyproject()["build-system"]["requires"]]
    [setuptools] = [r for r in requires if r.name == "setuptools"]
    assert not setuptools.specifier.contains(Version("76.9")), "SPDX strings need >= 77"
    assert setuptools.specifier.contains(Version("77.0"))


def _imported_top_names() -> set[str]:
    root = PYPROJECT.parent
    names: set[str] = set()
    for path in [*root.joinpath("podmgr").rglob("*.py"), root / "manage_pod.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_runtime_dependency_is_imported() -> None:
    """A declared dependency nobody imports is weight for every install (aiofiles and
    cachetools were declared and never used)."""
    providers = importlib.metadata.packages_distributions()
    imported_dists = {
        canonicalize_name(dist)
        for name in _imported_top_names()
        for dist in providers.get(name, [])
    }
    declared = [Requirement(r) for r in _pyproject()["project"]["dependencies"]]
    unused = [str(r) for r in declared if canonicalize_name(r.name) not in imported_dists]
    assert unused == []
