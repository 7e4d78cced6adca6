"""What the command says when a newcomer gets something wrong (or starts `serve` by hand in a terminal)."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from koji_mcp.cli.main import main
from tests.conftest import koji_mcp_command, subprocess_env


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*koji_mcp_command(), *args], env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_unknown_subcommand_lists_the_real_ones(capsys) -> None:
    assert main(["frobnicate"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("koji-mcp: unknown subcommand 'frobnicate'; choose from serve, sandbox, demo, batch, "
                            "doctor, config, ledger (koji-mcp --help explains each)\n")


@pytest.mark.parametrize("argv", [["serve", "--transprt", "sse"], ["--transprt"]])
def test_a_misspelt_serve_flag_shows_serves_usage(capsys, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    # one line (issue 11): serve's own error, pointing at serve's help, not the top-level usage
    assert err.startswith("koji-mcp serve: error: unrecognized arguments: --transprt") and err.count("\n") == 1
    assert "(see koji-mcp serve --help)" in err and "SUBCOMMAND" not in err


def test_a_negative_timeout_names_the_variable(tmp_path) -> None:
    proc = run("serve", "--sandbox", KOJI_TIMEOUT="-5", KOJI_MCP_STATE_DIR=str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "koji-mcp: KOJI_TIMEOUT must be greater than 0 (got -5.0)\n"
    proc = run("serve", "--sandbox", "--timeout", "0", KOJI_MCP_STATE_DIR=str(tmp_path))
    assert proc.returncode == 2 and proc.stderr == "koji-mcp: --timeout must be greater than 0 (got 0.0)\n"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root writes anywhere; needs POSIX modes")
def test_an_unwritable_state_dir_says_it_is_the_state_dir(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = run("serve", "--sandbox", "--state-dir", str(locked / "state"))
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"koji-mcp: cannot use the state directory {locked / 'state' / 'sandbox'}: Permission denied")
    assert "set --state-dir (or KOJI_MCP_STATE_DIR) to another directory" in line


def test_a_state_dir_that_is_a_file_says_it_is_the_state_dir(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "p.csv").write_text("external_id\nu1\n")
    proc = subprocess.run([*koji_mcp_command(), "batch", "p.csv", "--dry-run", "--state-dir", str(tmp_path / "file")],
                          env=subprocess_env(), cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"koji-mcp batch: cannot use the state directory {tmp_path / 'file'}: ")
    assert line.endswith("set --state-dir (or KOJI_MCP_STATE_DIR) to another directory that you can write")


def test_transport_http_is_streamable_http(tmp_path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--sandbox", "--transport", "http", "--port", str(port)],
                            env=subprocess_env(KOJI_MCP_STATE_DIR=":memory:"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/mcp", json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}},
                    headers={"Accept": "application/json, text/event-stream"}, timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        assert reply.status_code == 200 and "koji-mcp" in reply.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_on_a_terminal_says_what_it_is_waiting_for(tmp_path: Path) -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--sandbox"], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path)))
    os.close(slave)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 20)
        assert ready, "no line on stderr within 20 s"
        first = proc.stderr.readline().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    assert first == ("koji-mcp: this speaks MCP over stdio and waits for an MCP client (Claude Desktop, Cursor, …) "
                     "on stdin; to see it work, run `koji-mcp demo` (Ctrl-C to quit)\n")


def test_serve_on_a_pipe_stays_silent_on_stderr_about_it(tmp_path) -> None:
    proc = run("serve", "--sandbox", KOJI_MCP_STATE_DIR=str(tmp_path))  # stdin /dev/null: EOF, exits
    assert "speaks MCP over stdio" not in proc.stderr


def test_demo_app_flags_need_app(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--port", "9000"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        "koji-mcp demo: error: --port and --no-browser only apply with --app (see koji-mcp demo --help)\n")


def test_demo_app_on_a_taken_port_says_so(capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["demo", "--app", "--no-browser", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("koji-mcp demo --app: port ") and "is already in use" in err and err.count("\n") == 1
