"""pyproject.toml as a build reads it: no deprecated metadata, so installing prints no
screen of setuptools warnings (issue 9: `project.license` as a TOML table)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from packaging.licenses import canonicalize_license_expression
from packaging.requirements import Requirement
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
