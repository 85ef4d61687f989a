"""Which HTTP client where (issue 9: five were in use). Synchronous code uses httpx, a
dependency already; the standard library's urllib only where import time is the point,
and such a module says so in its docstring (`podmgr status`'s probe, the simulator's
test kit). Inside the runpod SDK requests stays; the proxy picks its client by
measurement, so podmgr/proxy is not checked here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["podmgr", "bench", "manage_pod.py", "proxy_fastapi.py"]


def _modules() -> list[Path]:
    paths: list[Path] = []
    for name in CHECKED:
        path = ROOT / name
        paths.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [p for p in paths if "proxy" not in p.relative_to(ROOT).parts[:2]]


def _imports_urllib_request(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name in ("urllib.request", "urllib.error") for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and node.module in ("urllib.request", "urllib.error"):
            return True
    return False


def test_urllib_only_where_the_standard_library_is_the_point() -> None:
    unexplained = []
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        if not _imports_urllib_request(tree):
            continue
        doc = (ast.get_docstring(tree) or "").lower()
        if "standard library" not in doc:
            unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == [], "use httpx, or say why the standard library must do"
