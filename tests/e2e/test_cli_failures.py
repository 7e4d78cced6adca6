"""One line on stderr and the right exit code, never a traceback (issue 11, item 9).

Each case runs the real `koji-mcp` as a subprocess: `batch` on a corrupt, newer-schema or locked
ledger or an unusable state directory (also with --dry-run), a CSV cell longer than Python's csv
limit, `serve` on a newer-schema ledger, `serve --port 99999`, and `serve` on a port already taken.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import koji_mcp_command, subprocess_env

KEY = "pk_live_" + "f" * 32  # well-shaped, so no key warning joins stderr


def koji_mcp(*args: str, state: Path | str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(KOJI_API_KEY=KEY, KOJI_MCP_STATE_DIR=str(state))
    return subprocess.run([*koji_mcp_command(), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert err and "\n" not in err, f"expected one line on stderr, got:\n{proc.stderr}"
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text("external_id,display_name\nu1,Ann\n")
    return path


def newer_ledger(state: Path, *, sandbox: bool = False) -> Path:
    """A ledger from a newer koji-mcp; with `sandbox`, the one `--sandbox` uses (STATE/sandbox/)."""
    where = state / "sandbox" if sandbox else state
    where.mkdir(parents=True)
    with sqlite3.connect(where / "ledger.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")
    return state


@pytest.mark.parametrize("dry_run", [True, False])
def test_batch_on_a_corrupt_ledger(people, tmp_path, dry_run) -> None:
    state = tmp_path / "state"
    (state / "sandbox").mkdir(parents=True)  # --sandbox keeps its ledger in STATE/sandbox/
    (state / "sandbox" / "ledger.sqlite3").write_bytes(os.urandom(4096))
    proc = koji_mcp("batch", str(people), "--sandbox", *(["--dry-run"] if dry_run else []), state=state)
    one_line(proc, 2, "koji-mcp batch:", "not a readable SQLite database", "--state-dir")


def test_batch_on_a_newer_schema_ledger(people, tmp_path) -> None:
    proc = koji_mcp("batch", str(people), "--sandbox", "--dry-run", state=newer_ledger(tmp_path / "state", sandbox=True))
    one_line(proc, 2, "newer koji-mcp (schema v99, this one knows v", "upgrade koji-mcp")


def test_serve_on_a_newer_schema_ledger(tmp_path) -> None:
    proc = koji_mcp("serve", state=newer_ledger(tmp_path / "state"))
    one_line(proc, 2, "koji-mcp:", "newer koji-mcp (schema v99, this one knows v")


def test_batch_on_a_locked_ledger(people, tmp_path) -> None:
    state = tmp_path / "state"
    assert koji_mcp("batch", str(people), "--sandbox", "--dry-run", state=state).returncode == 0  # creates it
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"db = sqlite3.connect({str(state / 'sandbox' / 'ledger.sqlite3')!r}, isolation_level=None)\n"
         "db.execute('PRAGMA locking_mode=EXCLUSIVE'); db.execute('BEGIN EXCLUSIVE')\n"
         "print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        proc = koji_mcp("batch", str(people), "--sandbox", "--dry-run", state=state, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    one_line(proc, 1, "is locked by another process", "try again")


@pytest.mark.parametrize("dry_run", [True, False])
def test_batch_with_an_unusable_state_dir(people, tmp_path, dry_run) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    proc = koji_mcp("batch", str(people), "--sandbox", *(["--dry-run"] if dry_run else []), state=blocker / "state")
    one_line(proc, 2, f"cannot use the state directory {blocker / 'state'}", "--state-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a mode-0500 directory")
def test_batch_with_a_read_only_state_dir(people, tmp_path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o500)
    try:
        proc = koji_mcp("batch", str(people), "--sandbox", "--dry-run", state=parent / "state")
    finally:
        parent.chmod(0o700)
    one_line(proc, 2, "cannot use the state directory", "Permission denied")


def test_a_csv_cell_over_the_csv_module_limit_is_bad_input(tmp_path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("external_id,display_name,notes\nu1,Ann,ok\nu2,Bob," + "x" * 140_000 + "\n")
    proc = koji_mcp("batch", str(path), "--sandbox", "--dry-run", state=tmp_path / "state")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "row 2 (line 3), column metadata: value of 'notes' is longer than 2000 characters" in proc.stderr


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_serve_with_a_bad_port(tmp_path, port) -> None:
    proc = koji_mcp("serve", "--transport", "streamable-http", "--port", port, state=tmp_path / "state")
    one_line(proc, 2, "argument --port", "1 to 65535")


def test_serve_on_a_taken_port_says_so_before_claiming_to_serve(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = koji_mcp("serve", "--transport", "streamable-http", "--port", str(port), "--sandbox",
                        state=tmp_path / "state")
    err = one_line(proc, 2, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert "serving" not in err
    assert time.monotonic() - started < 30
