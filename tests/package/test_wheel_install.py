"""The package as a user installs it: build the sdist and the wheel, install the wheel into a fresh venv,
and run it from there (no source tree on the path). Slow (a venv and its dependencies): `make package`.

Dependencies come from wherever pip is configured to look (PyPI on CI); set KOJI_MCP_PACKAGE_TEST=1 to run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import koji_mcp
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.skipif(not os.environ.get("KOJI_MCP_PACKAGE_TEST"), reason="slow: run with `make package`"),
    pytest.mark.anyio,
]
VERSION = koji_mcp.__version__


def clean_env(**extra: str) -> dict[str, str]:
    """The user's environment minus anything that would let the source tree leak in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KOJI", "PYTHON", "VIRTUAL_ENV")) and k not in ("PIP_REQUIRE_VIRTUALENV",)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("package")
    dist = work / "dist"
    build = subprocess.run([sys.executable, "-m", "hatchling", "build", "-d", str(dist)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    [sdist] = dist.glob("koji_mcp-*.tar.gz")
    [wheel] = dist.glob("koji_mcp-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
                         cwd=work, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return {"sdist": sdist, "wheel": wheel, "bin": bindir, "work": work}


def test_artifacts_carry_the_license_and_project_files(installed) -> None:
    assert installed["wheel"].name == f"koji_mcp-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(installed["wheel"]) as archive:
        names = set(archive.namelist())
        [license_file] = [n for n in names if n.endswith("/licenses/LICENSE")]
        assert archive.read(license_file).decode().startswith("MIT License")
        metadata = archive.read(f"koji_mcp-{VERSION}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in metadata and "Name: koji-mcp" in metadata
    with tarfile.open(installed["sdist"]) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "SECURITY.md", "Dockerfile", "server.json",
            "pyproject.toml", "src/koji_mcp/__init__.py", "src/koji_mcp/server/tools/catalog.json"} <= names


def test_the_installed_command_runs_from_its_own_venv(installed) -> None:
    bindir, work = installed["bin"], installed["work"]
    where = subprocess.run([str(bindir / "python"), "-c", "import koji_mcp; print(koji_mcp.__file__)"],
                           cwd=work, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(bindir.parent)  # not the source tree
    version = subprocess.run([str(bindir / "koji-mcp"), "--version"], cwd=work, env=clean_env(),
                             capture_output=True, text=True, timeout=60)
    assert (version.returncode, version.stdout) == (0, f"koji-mcp {VERSION}\n")
    demo = subprocess.run([str(bindir / "koji-mcp"), "demo"], cwd=work, env=clean_env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "session tokens never left the server" in demo.stdout + demo.stderr


async def test_stdio_tools_list_from_the_installed_command(installed) -> None:
    from koji_mcp.server.tools.catalog import load_catalog

    params = StdioServerParameters(command=str(installed["bin"] / "koji-mcp"), args=["serve", "--sandbox"],
                                   env=clean_env(KOJI_MCP_STATE_DIR=":memory:"), cwd=str(installed["work"]))
    errlog = (installed["work"] / "stderr.log").open("w+")
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        listed = await session.list_tools()
        started = await session.call_tool("start_interview", {"respondent": {"display_name": "Ana"}})
    assert (init.server_info.name, init.server_info.version) == ("koji-mcp", VERSION)
    assert sorted(t.name for t in listed.tools) == sorted(load_catalog())
    assert not started.is_error, started.content[0].text


def test_server_json_agrees_with_the_built_package(installed) -> None:
    server = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [package] = server["packages"]
    assert (package["identifier"], package["version"], server["version"]) == (project["name"], VERSION, VERSION)
    assert installed["wheel"].name.startswith(project["name"].replace("-", "_") + f"-{package['version']}-")
