"""compose.yaml and the README's "Run several replicas", checked without Docker (and without PyYAML, which
the project does not depend on): the file's structure, nginx's config inside it, every KOJI_* name they use
being a real setting, and the replica's exact command serving and passing its /readyz healthcheck."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from koji_mcp.cli.main import build_parser
from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import ROOT, subprocess_env
from tests.e2e.test_http import free_port
from tests.test_dockerfile import exec_form

COMPOSE = (ROOT / "compose.yaml").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Declared on the PostgreSQL branch (issue 15), built in parallel: drop from here once Settings reads it.


def settings_env_names() -> set[str]:
    """Every variable config.py reads (Settings.load is the one reader of the environment)."""
    source = (ROOT / "src" / "koji_mcp" / "config.py").read_text(encoding="utf-8")
    return set(re.findall(r'env(?:\.get\(|\[)"(KOJI_[A-Z0-9_]+)"', source))


def keys_at(text: str, indent: int) -> list[str]:
    return re.findall(rf"^ {{{indent}}}([A-Za-z0-9_.-]+):", text, flags=re.M)


def block(text: str, key: str, indent: int) -> str:
    """The lines under `key:` (at `indent` spaces) up to the next key at the same or a smaller indent."""
    match = re.search(rf"^ {{{indent}}}{re.escape(key)}:.*\n((?:(?: {{{indent + 1},}}.*)?\n)*)", text, flags=re.M)
    assert match, f"no {key!r} at indent {indent}"
    return match.group(1)


def environment() -> dict[str, str]:
    lines = block(block(COMPOSE, "x-koji-mcp", 0), "environment", 2)
    return dict(re.findall(r"^ {4}([A-Z_]+): (.+)$", lines, flags=re.M))


def nginx_conf() -> str:
    return block(block(COMPOSE, "configs", 0), "nginx", 2)


def test_the_structure() -> None:
    assert keys_at(COMPOSE, 0) == ["x-koji-mcp", "services", "configs", "volumes"]
    services = block(COMPOSE, "services", 0)
    assert keys_at(services, 2) == ["postgres", "koji-mcp-1", "koji-mcp-2", "proxy"]
    postgres = block(services, "postgres", 2)
    assert "    image: postgres:16\n" in postgres and 'pg_isready -U koji -d koji' in block(postgres, "healthcheck", 4)
    for replica in ("koji-mcp-1", "koji-mcp-2"):
        assert block(services, replica, 2).strip() == "<<: *koji-mcp"
    anchor = block(COMPOSE, "x-koji-mcp", 0)
    assert "condition: service_healthy" in block(anchor, "depends_on", 2)
    assert re.search(r"^ {4}context: \.$", anchor, flags=re.M) and 'KOJI_MCP_EXTRAS: "[postgres]"' in anchor
    proxy = block(services, "proxy", 2)
    assert '- "443:443"' in proxy and proxy.count("condition: service_healthy") == 2
    assert "ports:" not in anchor and "ports:" not in postgres  # only nginx is reachable from outside


def test_the_replicas_run_the_dockerfile_entrypoint_stateless_with_readiness() -> None:
    command = [*exec_form("ENTRYPOINT"), *json.loads(re.search(r"^  command: (\[.*\])$", COMPOSE, re.M).group(1))]
    assert command[:7] == ["koji-mcp", "serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port"]
    args = build_parser().parse_args(command[1:])
    assert (args.transport, args.host, args.stateless) == ("streamable-http", "0.0.0.0", True)
    assert args.allowed_host == ["mcp.example.com"] and args.public_url == "https://mcp.example.com"
    health = json.loads(re.search(r"^ {4}test: (\[.*\])$", block(COMPOSE, "x-koji-mcp", 0), re.M).group(1))
    assert f"http://127.0.0.1:{args.port}/readyz" in health[-1]
    env = environment()
    assert {"KOJI_API_KEY", "KOJI_MCP_DATABASE_URL", "KOJI_MCP_STATELESS", "KOJI_MCP_REQUEST_STATE_KEYS",
            "KOJI_MCP_AUTH_TOKEN"} <= set(env)
    for secret in ("KOJI_API_KEY", "KOJI_MCP_REQUEST_STATE_KEYS", "KOJI_MCP_AUTH_TOKEN"):  # never a default
        assert re.fullmatch(rf"\$\{{{secret}:\?set {secret}\}}", env[secret]), env[secret]
    assert env["KOJI_MCP_DATABASE_URL"].startswith("postgresql://koji:${POSTGRES_PASSWORD:?")


def test_nginx_does_tls_forwarding_and_no_buffering() -> None:
    conf = nginx_conf()
    assert "content: |" in block(COMPOSE, "configs", 0)
    # compose interpolates the whole file: nginx's own variables must be written $$name
    assert re.findall(r"(?<!\$)\$(?!\$)", conf) == [] and "$$host" in conf
    conf = conf.replace("$$", "$")
    for line in ("listen 443 ssl;", "ssl_certificate     /etc/nginx/certs/fullchain.pem;",
                 "proxy_set_header Host $host;", "proxy_set_header X-Forwarded-For $remote_addr;",
                 "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_buffering off;", "client_max_body_size 2m;",
                 "hash $http_authorization consistent;", "server koji-mcp-1:8000", "server koji-mcp-2:8000",
                 "return 301 https://$host$request_uri;"):
        assert line in conf, line
    assert "non_idempotent" not in conf  # a POST that may have reached Koji is never sent to a second replica
    assert "hash $http_authorization consistent;" in README


def test_every_env_name_in_the_readme_section_and_compose_is_a_setting() -> None:
    section = README.split("## Run several replicas", 1)[1].split("\n## ", 1)[0]
    known = settings_env_names()
    assert {"KOJI_MCP_STATELESS", "KOJI_MCP_REQUEST_STATE_KEYS", "KOJI_API_KEY"} <= known
    for where, text in (("README", section), ("compose.yaml", COMPOSE)):
        names = set(re.findall(r"\bKOJI_[A-Z0-9_]*[A-Z0-9]\b", text)) - {"KOJI_MCP_EXTRAS"}  # a Docker build arg
        assert names and names - known == set(), (where, names - known)
    assert "compose.yaml" in section and "/readyz" in section and "--stateless" in section


def test_the_replica_command_serves_and_passes_its_readiness_check(sandbox, tmp_path) -> None:
    """The compose replica's own command and environment (minus PostgreSQL) with this venv, on a free port."""
    port = free_port()
    command = [*exec_form("ENTRYPOINT"), *json.loads(re.search(r"^  command: (\[.*\])$", COMPOSE, re.M).group(1))]
    command[command.index("--port") + 1] = str(port)
    script = Path(sys.executable).with_name("koji-mcp")
    command[0:1] = [str(script)] if script.is_file() else [sys.executable, "-m", "koji_mcp"]
    values = {"KOJI_API_KEY": DEMO_KEY, "KOJI_MCP_REQUEST_STATE_KEYS": "compose-test-key-" + "0123456789abcdef" * 2,
              "KOJI_MCP_AUTH_TOKEN": "ops=" + "t0k3n" * 8}
    env = {name: values.get(name, value.strip('"')) for name, value in environment().items()
           if name != "KOJI_MCP_DATABASE_URL"}  # PostgreSQL: tests/e2e/test_replicas.py
    health = json.loads(re.search(r"^ {4}test: (\[.*\])$", block(COMPOSE, "x-koji-mcp", 0), re.M).group(1))
    health = [sys.executable, *health[2:]]
    health[-1] = health[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    proc = subprocess.Popen(command, env=subprocess_env(**env, KOJI_BASE_URL=sandbox.base_url,
                                                        KOJI_MCP_STATE_DIR=str(tmp_path)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(health, capture_output=True, timeout=10).returncode != 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the readiness healthcheck never passed"
            time.sleep(0.2)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", headers={"Host": "mcp.example.com"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    finally:
        proc.terminate()
        proc.wait(10)
