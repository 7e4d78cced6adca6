"""The state dir is trusted only when it is ours: serve, batch and doctor refuse (exit 2, one line) a dir
others own or can write, a symlink at the database path, and ledger files someone else owns."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env

pytestmark = pytest.mark.skipif(os.name == "nt" or os.geteuid() != 0,
                                reason="needs root to hand files to another user")
NOBODY = pwd.getpwnam("nobody").pw_uid if os.name != "nt" else 0
ME = pwd.getpwuid(os.geteuid()).pw_name if os.name != "nt" else ""


def world_writable(state: Path, tmp_path: Path) -> str:
    state.mkdir()
    state.chmod(0o777)
    return f"state dir {state} is writable by others (mode 777): they could plant files the ledger would use; " \
           f"run `chmod 700 {state}`"


def symlink_at_db(state: Path, tmp_path: Path) -> str:
    state.mkdir(mode=0o700)
    (state / "ledger.sqlite3").symlink_to(tmp_path / "elsewhere.db")
    return f"{state / 'ledger.sqlite3'} is a symbolic link; koji-mcp does not follow links for its ledger: remove " \
           f"it (`rm {state / 'ledger.sqlite3'}`) or use another state dir"


def wal_of_someone_else(state: Path, tmp_path: Path) -> str:
    state.mkdir(mode=0o700)
    wal = state / "ledger.sqlite3-wal"
    wal.write_bytes(b"")
    os.chown(wal, NOBODY, -1)
    return f"{wal} belongs to user nobody, not to you (user {ME}): it could receive the session tokens; " \
           f"remove it (`rm {wal}`) if you do not know why it is there"


def dir_of_someone_else(state: Path, tmp_path: Path) -> str:
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, -1)
    return f"state dir {state} belongs to user nobody, not to you (user {ME}): others could read the session " \
           f"tokens in it; use a directory of your own (KOJI_MCP_STATE_DIR or --state-dir)"


CASES = [world_writable, symlink_at_db, wal_of_someone_else, dir_of_someone_else]


@pytest.mark.parametrize("command", ["serve", "batch", "doctor"])
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_an_unsafe_state_dir_is_refused_with_one_line(sandbox, tmp_path, command: str,
                                                      case: Callable[[Path, Path], str]) -> None:
    state = tmp_path / "state"
    message = case(state, tmp_path)
    people = tmp_path / "people.csv"
    people.write_text("external_id\nu1\n")
    args = {"serve": ["serve"], "batch": ["batch", str(people)], "doctor": ["doctor"]}[command]
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(state))
    proc = subprocess.run([*koji_mcp_command(), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    if command == "doctor":
        assert proc.stdout.splitlines()[-2:] == [f"✗ {message}", "1 problem, 0 warnings: fix the lines marked ✗ above, "
                                                 "then run `koji-mcp doctor` again."]
        assert proc.stderr == ""
    else:
        prefix = "koji-mcp batch: " if command == "batch" else "koji-mcp: "
        assert proc.stderr.splitlines()[-1] == prefix + message
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "elsewhere.db").exists()  # a symlink's target is never created
    assert [r for r in sandbox.requests() if r["method"] == "POST" and r["status"] < 400] == []  # nothing was started (doctor only probes)


def test_with_the_sandbox_the_state_dir_itself_must_be_trusted(tmp_path) -> None:
    """--sandbox keeps its ledger in STATE_DIR/sandbox/; a world-writable STATE_DIR is refused all the same."""
    state = tmp_path / "shared"
    state.mkdir()
    state.chmod(0o777)
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox", "--state-dir", str(state)],
                          env=subprocess_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"koji-mcp: state dir {state} is writable by others (mode 777): they could plant files "
                           f"the ledger would use; run `chmod 700 {state}`\n")
    assert not (state / "sandbox").exists()
