"""The house's import arrows, read from the source (ast): cli -> server -> interviews -> koji -> ground floor.

Every `import` and `from ... import` in src/koji_mcp counts, also the lazy ones inside functions and
under TYPE_CHECKING: a lazy import is still a dependency. The test fails as soon as someone adds an
import that points the wrong way or closes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "koji_mcp"
GROUND_FLOOR = {"koji_mcp.config", "koji_mcp.logs", "koji_mcp.text"}
FOLDERS = ("cli", "server", "interviews", "koji", "sandbox")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from koji_mcp.server import tools` imports the module koji_mcp.server.tools
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # A module's own parent packages are not dependencies: Python runs them first anyway, and
        # a package's __init__ re-exporting its submodules is not a layering cycle.
        edges[name] = {dep for dep in imports_of(path)
                       if dep in modules and dep != name and not name.startswith(dep + ".")}
    return edges


def all_imports() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in (SRC / PACKAGE).rglob("*.py")}


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else module


def violations(rule: dict[str, tuple[str, ...]]) -> list[str]:
    """`rule` maps a folder (or module) to import prefixes it must not use."""
    found = []
    for module, deps in all_imports().items():
        banned = rule.get(folder(module), ())
        for dep in sorted(deps):
            if any(dep == b or dep.startswith(b + ".") for b in banned):
                found.append(f"{module} imports {dep}")
    return found


def test_the_source_is_found() -> None:
    edges = graph()
    assert {"koji_mcp.config", "koji_mcp.koji.client", "koji_mcp.server.app", "koji_mcp.cli.main"} <= set(edges)
    assert "koji_mcp.koji.errors" in edges["koji_mcp.koji.client"]


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == [], " | ".join(" -> ".join(c) for c in cycles)


KOJI_MCP = "koji_mcp"


@pytest.mark.parametrize(("where", "banned"), [
    ("koji", ("koji_mcp.server", "koji_mcp.interviews", "koji_mcp.cli", "koji_mcp.sandbox", "mcp")),
    ("interviews", ("koji_mcp.server", "koji_mcp.cli", "mcp", "mcp_types")),
    ("server", ("koji_mcp.cli",)),
])
def test_imports_point_down(where: str, banned: tuple[str, ...]) -> None:
    assert violations({where: banned}) == []


def test_the_sandbox_shares_no_code() -> None:
    found = [f"{m} imports {d}" for m, deps in all_imports().items() if folder(m) == "sandbox"
             for d in deps if d.startswith(KOJI_MCP + ".") and not d.startswith("koji_mcp.sandbox")]
    assert found == []


def test_the_ground_floor_imports_no_folder() -> None:
    folders = tuple(f"koji_mcp.{f}" for f in FOLDERS)
    found = [f"{m} imports {d}" for m, deps in all_imports().items() if m in GROUND_FLOOR
             for d in deps if any(d == f or d.startswith(f + ".") for f in folders)]
    assert found == []


def test_a_wrong_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above can fail: an upward import planted in a copy of koji/ is reported."""
    planted = SRC / PACKAGE / "koji" / "planted_for_test.py"
    source = "from koji_mcp.server.tools.results import fail\nimport mcp.types\n"
    monkeypatch.setattr(Path, "read_text", _fake_read_text(planted, source))
    monkeypatch.setattr(Path, "rglob", _with_extra(planted))
    assert violations({"koji": ("koji_mcp.server", "mcp")}) == [
        "koji_mcp.koji.planted_for_test imports koji_mcp.server.tools.results",
        "koji_mcp.koji.planted_for_test imports koji_mcp.server.tools.results.fail",
        "koji_mcp.koji.planted_for_test imports mcp.types",
    ]


def _fake_read_text(planted: Path, source: str):
    real = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        return source if self == planted else real(self, *args, **kwargs)  # type: ignore[arg-type]

    return read_text


def _with_extra(planted: Path):
    real = Path.rglob

    def rglob(self: Path, pattern: str):
        yield from real(self, pattern)
        if self == SRC / PACKAGE and pattern == "*.py":
            yield planted

    return rglob


# Which test modules cover each src module (the sandbox has its own folder, tests/sandbox/).
# A new src module must be added here with the tests that cover it; a named test file must exist.
COVERED_BY: dict[str, tuple[str, ...]] = {
    "koji_mcp": ("test_packaging.py",),
    "koji_mcp.__main__": ("e2e/test_stdio.py",),
    "koji_mcp.config": ("test_config_and_logs.py",),
    "koji_mcp.logs": ("test_config_and_logs.py", "test_secrets.py"),
    "koji_mcp.text": ("test_text.py",),
    "koji_mcp.koji": ("test_koji_client.py",),
    "koji_mcp.koji.client": ("test_koji_client.py", "test_fault_matrix.py"),
    "koji_mcp.koji.errors": ("test_koji_client.py", "test_start_errors.py"),
    "koji_mcp.koji.models": ("test_start_interview.py", "test_fuzz.py"),
    "koji_mcp.koji.ratelimit": ("test_config_and_logs.py", "test_start_errors.py"),
    "koji_mcp.koji.replies": ("test_lifecycle.py",),
    "koji_mcp.interviews": ("test_ledger.py",),
    "koji_mcp.interviews.ledger": ("test_ledger.py",),
    "koji_mcp.interviews.database": ("test_ledger.py", "e2e/test_replicas.py"),
    "koji_mcp.interviews.shared_pacing": ("test_shared_pacing.py", "e2e/test_replicas.py"),
    "koji_mcp.interviews.start_once": ("test_start_once.py", "test_start_errors.py"),
    "koji_mcp.interviews.batches": ("test_batch.py",),
    "koji_mcp.interviews.views": ("test_lifecycle.py", "test_fuzz.py"),
    "koji_mcp.interviews.services": ("test_start_once.py", "test_fault_matrix.py"),
    "koji_mcp.server": ("e2e/test_http.py",),
    "koji_mcp.server.app": ("e2e/test_http.py", "test_tool_filters.py"),
    "koji_mcp.server.app_view": ("test_app_view.py", "browser/test_app_view_chromium.py"),
    "koji_mcp.server.auth": ("e2e/test_auth_http.py", "test_auth.py"),
    "koji_mcp.server.scopes": ("test_auth.py", "e2e/test_oauth_external.py"),
    "koji_mcp.server.jwt_auth": ("e2e/test_oauth_external.py",),
    "koji_mcp.cli.ledger": ("e2e/test_ledger_resolve.py",),
    "koji_mcp.cli.failures": ("e2e/test_cli_failures.py",),
    "koji_mcp.server.oauth": ("e2e/test_oauth_builtin.py", "browser/test_consent_chromium.py"),
    "koji_mcp.server.oauth_store": ("e2e/test_oauth_builtin.py",),
    "koji_mcp.server.sdk": ("test_log_level_and_completions.py",),
    "koji_mcp.server.log_level_and_completions": ("test_log_level_and_completions.py",),
    "koji_mcp.server.prompts": ("test_lifecycle.py",),
    "koji_mcp.server.resources": ("test_lifecycle.py", "test_secrets.py"),
    "koji_mcp.server.tools": ("test_tool_filters.py", "test_tool_surface.py"),
    "koji_mcp.server.tools.catalog": ("test_tool_surface.py",),
    "koji_mcp.server.tools.schema": ("test_tool_surface.py", "test_start_interview.py"),
    "koji_mcp.server.tools.results": ("test_start_errors.py", "test_fault_matrix.py"),
    "koji_mcp.server.tools.start": ("test_start_interview.py", "test_start_errors.py"),
    "koji_mcp.server.tools.batch": ("test_batch.py",),
    "koji_mcp.server.tools.lifecycle": ("test_lifecycle.py",),
    "koji_mcp.server.tools.read": ("test_lifecycle.py",),
    "koji_mcp.server.tools.search": ("test_search.py", "e2e/test_search_http.py"),
    "koji_mcp.interviews.jobs": ("test_batch_jobs.py", "e2e/test_batch_jobs_e2e.py"),
    "koji_mcp.server.subscriptions": ("test_batch_jobs.py",),
    "koji_mcp.cli": ("e2e/test_stdio.py",),
    "koji_mcp.cli.main": ("e2e/test_stdio.py", "e2e/test_doctor.py"),
    "koji_mcp.cli.serve": ("e2e/test_stdio.py", "e2e/test_http.py"),
    "koji_mcp.cli.sandbox": ("e2e/test_sandbox_cli.py",),
    "koji_mcp.cli.demo": ("e2e/test_sandbox_cli.py",),
    "koji_mcp.cli.app_demo": ("browser/test_app_view_chromium.py", "e2e/test_cli_words.py"),
    "koji_mcp.cli.batch": ("e2e/test_batch_cli.py",),
    "koji_mcp.cli.doctor": ("e2e/test_doctor.py",),
    "koji_mcp.cli.host_config": ("test_config_command.py",),
    "koji_mcp.cli.participants": ("test_participants.py",),
}


def test_every_src_module_has_named_tests() -> None:
    modules = {m for m in graph() if folder(m) != "sandbox"}
    assert sorted(modules - set(COVERED_BY)) == [], "add the new module to COVERED_BY with the tests that cover it"
    assert sorted(set(COVERED_BY) - modules) == [], "COVERED_BY names a module that no longer exists"
    tests = Path(__file__).parent
    missing = sorted({f for files in COVERED_BY.values() for f in files if not (tests / f).is_file()})
    assert missing == []
    assert (tests / "sandbox").is_dir() and list((tests / "sandbox").glob("test_*.py"))
