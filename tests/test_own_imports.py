"""Every import of facegate's own modules resolves.

mypy runs with ignore_missing_imports for third-party packages without stubs; that once hid a
stale `gateway.*` import. pyproject.toml's per-module override turns it off for `gateway.*`,
and these tests hold both halves: mypy (with the project's config) reports a missing
`gateway.*` module, and every `gateway.*` import written in gateway/ and tests/ (lazy ones
inside functions and TYPE_CHECKING blocks included, which no test run would execute) names a
module that exists and, for `from gateway.x import name`, a name that module defines.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("gateway", "tests")


def _own_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) for each gateway.* import in the file."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names if _is_own(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_own(node.module or ""):
            found += [(node.lineno, node.module or "", a.name) for a in node.names]
    return sorted(found)


def _is_own(module: str) -> bool:
    return module == "gateway" or module.startswith("gateway.")


def _unresolved(module: str, name: str | None) -> str | None:
    """Why `module` (and `name` in it) does not resolve; None when it does."""
    try:
        if importlib.util.find_spec(module) is None:
            return f"no module {module}"
    except ModuleNotFoundError as exc:
        return f"no module {exc.name}"
    if name is None or name == "*":
        return None
    imported = importlib.import_module(module)
    if hasattr(imported, name):
        return None
    if hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.{name}"):
        return None  # a submodule not imported by its package
    return f"{module} defines no {name}"


def test_every_own_import_resolves() -> None:
    problems = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            for line, module, name in _own_imports(path):
                why = _unresolved(module, name)
                if why:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not problems, "stale imports:\n" + "\n".join(problems)


def test_scanner_finds_a_stale_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def lazy() -> None:\n    from gateway.triton.spec import NO_SUCH_NAME\n"
        "import gateway.no_such_module\n"
    )
    imports = _own_imports(probe)
    assert [_unresolved(m, n) for _, m, n in imports] == [
        "gateway.triton.spec defines no NO_SUCH_NAME",
        "no module gateway.no_such_module",
    ]


def test_mypy_never_ignores_a_missing_gateway_module(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import gateway.no_such_module\nimport gateway.triton.no_such\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(probe),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'module named "gateway.no_such_module"  [import-not-found]' in result.stdout
    assert 'module named "gateway.triton.no_such"  [import-not-found]' in result.stdout
