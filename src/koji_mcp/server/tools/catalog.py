"""The tool catalog: what `tools/list` answers, generated from the code and checked in.

Building six validated tool schemas with pydantic costs more startup time than everything else
koji-mcp does before `initialize`; the catalog lets the server list its tools without building
them. tests/test_tool_surface.py fails when catalog.json no longer matches the code; regenerate
with `python -m koji_mcp.server.tools.catalog` (or `UPDATE_CATALOG=1 make test`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CATALOG_FILE = "catalog.json"


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, dict[str, Any]]:
    try:
        text = resources.files(__package__).joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return {entry["name"]: entry for entry in json.loads(text)}


def generate_catalog() -> list[dict[str, Any]]:
    from koji_mcp.server.tools import ALL_TOOLS
    from koji_mcp.server.tools.schema import build_tool, describe_tool

    return [describe_tool(build_tool(spec)) for spec in ALL_TOOLS]


def write_catalog() -> Path:
    path = Path(__file__).with_name(CATALOG_FILE)
    path.write_text(json.dumps(generate_catalog(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    load_catalog.cache_clear()
    return path


if __name__ == "__main__":
    import sys

    print(f"wrote {write_catalog()}", file=sys.stderr)
