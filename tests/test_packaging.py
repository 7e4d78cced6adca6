"""Packaging: server.json (the MCP registry entry) agrees with the code and README; the wheel is complete."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import koji_mcp
from tests.conftest import ROOT

SERVER_JSON = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_server_json_version_and_package_match_the_code() -> None:
    assert SERVER_JSON["version"] == koji_mcp.__version__
    [package] = SERVER_JSON["packages"]
    assert (package["registryType"], package["identifier"], package["version"]) == ("pypi", "koji-mcp",
                                                                                    koji_mcp.__version__)
    assert package["transport"] == {"type": "stdio"}
    assert SERVER_JSON["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", SERVER_JSON["name"])
    assert 1 <= len(SERVER_JSON["description"]) <= 100  # the registry's limit


def test_server_json_names_the_package_pyproject_builds() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [package] = SERVER_JSON["packages"]
    assert package["identifier"] == project["name"] == "koji-mcp"
    assert SERVER_JSON["name"].endswith("/" + project["name"])
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_server_json_env_vars_are_documented_and_the_key_is_secret() -> None:
    env = {var["name"]: var for var in SERVER_JSON["packages"][0]["environmentVariables"]}
    undocumented = [name for name in env if f"`{name}`" not in README]
    assert undocumented == []
    assert env["KOJI_API_KEY"]["isSecret"] is True and env["KOJI_API_KEY"]["isRequired"] is True
    assert not any(var.get("isSecret") for name, var in env.items() if name != "KOJI_API_KEY")
    assert {"KOJI_API_KEY", "KOJI_BASE_URL", "KOJI_MCP_STATE_DIR"} <= set(env)


def test_readme_carries_the_registry_ownership_marker() -> None:
    """The registry publishes a PyPI package only if its README names the server: `mcp-name: NAME`."""
    assert f"mcp-name: {SERVER_JSON['name']}" in README


@pytest.mark.skipif(importlib.util.find_spec("hatchling") is None,
                    reason="hatchling (the build backend) is not installed, so no offline wheel build")
def test_wheel_has_the_sandbox_brief_and_the_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("koji_mcp-*.whl")
    assert wheel.name.startswith(f"koji_mcp-{koji_mcp.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "koji_mcp/sandbox/default_brief.json" in names
        assert "koji_mcp/server/tools/catalog.json" in names  # tools/list is answered from it
        assert "koji_mcp/server/app_view/interview.html" in names  # the MCP App view
        assert "koji_mcp/cli/app_demo.html" in names  # koji-mcp demo --app
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = archive.read(metadata).decode()
    assert re.search(r"^Provides-Extra: postgres$", requires, re.MULTILINE)  # pip install koji-mcp[postgres]
    for dist in ("psycopg\\[binary\\]", "psycopg-pool"):
        assert re.search(rf"^Requires-Dist: {dist}<4,>=3\.2; extra == [\'\"]postgres[\'\"]$", requires, re.MULTILINE)
    assert "[console_scripts]" in text
    assert re.search(r"^koji-mcp\s*=\s*koji_mcp\.cli\.main:main$", text, re.MULTILINE)
