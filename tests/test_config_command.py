"""`koji-mcp config HOST`: the snippets' exact shapes, and `--write` merging safely into real files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from koji_mcp.cli.main import main
from koji_mcp.cli.host_config import default_config_path, server_command

SCRIPT = Path(sys.executable).absolute().with_name("koji-mcp")
# The console script when the package is installed (it is in the dev venv), else `python -m koji_mcp`.
COMMAND, PREFIX = (str(SCRIPT), []) if SCRIPT.is_file() else (str(Path(sys.executable).absolute()), ["-m", "koji_mcp"])
CLAUDE_LOCATIONS = [
    "  macOS:        ~/Library/Application Support/Claude/claude_desktop_config.json",
    "  Windows:      %APPDATA%\\Claude\\claude_desktop_config.json",
    "  Linux:        ~/.config/Claude/claude_desktop_config.json",
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["config", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def entry(*args: str, env: dict | None = None, **extra: object) -> dict:
    value: dict = {**extra, "command": COMMAND, "args": [*PREFIX, *args]}
    if env is not None:
        value["env"] = env
    return value


# -- printed snippets ------------------------------------------------------------------------------


def test_claude_snippet_is_pure_json_with_an_absolute_command(capsys) -> None:
    code, out, err = run(capsys, "claude")
    assert code == 0
    assert json.loads(out) == {"mcpServers": {"koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}
    assert Path(json.loads(out)["mcpServers"]["koji"]["command"]).is_absolute()
    lines = err.splitlines()
    assert lines[0] == 'Claude Desktop: put this under "mcpServers" in its config file, then restart Claude Desktop:'
    assert lines[1:4] == CLAUDE_LOCATIONS
    assert "does not inherit your shell's PATH" in lines[4]
    assert lines[5] == "Replace pk_live_… with your Koji API key (Dashboard > Profile > API Keys)."
    assert lines[6].endswith(": koji-mcp config claude --write")


def test_the_printed_command_really_starts_koji_mcp(capsys) -> None:
    _, out, _ = run(capsys, "cursor")
    server = json.loads(out)["mcpServers"]["koji"]
    argv = [server["command"], *server["args"][:-1], "--version"]  # same executable, minus `serve`
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd="/", env={})
    assert proc.returncode == 0 and proc.stdout.strip().startswith("koji-mcp ")


def test_cursor_snippet_and_where_its_file_lives(capsys) -> None:
    code, out, err = run(capsys, "cursor", "--name", "koji-prod")
    assert code == 0
    assert json.loads(out) == {"mcpServers": {"koji-prod": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}
    assert "  all systems:  ~/.cursor/mcp.json (global), or .cursor/mcp.json in a project" in err.splitlines()
    assert err.splitlines()[-1].endswith("koji-mcp config cursor --name koji-prod --write")


def test_vscode_snippet_prompts_for_the_key(capsys) -> None:
    code, out, err = run(capsys, "vscode")
    assert code == 0
    assert json.loads(out) == {
        "servers": {"koji": entry("serve", env={"KOJI_API_KEY": "${input:koji-api-key}"}, type="stdio")},
        "inputs": [{"type": "promptString", "id": "koji-api-key", "description": "Koji API key (pk_live_…)",
                    "password": True}],
    }
    assert err.splitlines()[1:5] == [
        "  workspace:    .vscode/mcp.json in the workspace folder",
        "  macOS user:   ~/Library/Application Support/Code/User/mcp.json",
        "  Windows user: %APPDATA%\\Code\\User\\mcp.json",
        "  Linux user:   ~/.config/Code/User/mcp.json",
    ]


@pytest.mark.parametrize(("host", "key"), [("claude", "mcpServers"), ("cursor", "mcpServers"), ("vscode", "servers")])
def test_sandbox_snippets_need_no_key(capsys, host: str, key: str) -> None:
    code, out, err = run(capsys, host, "--sandbox")
    extra = {"type": "stdio"} if host == "vscode" else {}
    assert code == 0
    assert json.loads(out) == {key: {"koji": entry("serve", "--sandbox", **extra)}}
    assert "no Koji account or API key needed" in err
    assert "pk_live_" not in out


def test_snippet_never_carries_the_key_from_the_environment(capsys, monkeypatch) -> None:
    monkeypatch.setenv("KOJI_API_KEY", "pk_live_" + "s3cret" * 6)
    _, out, err = run(capsys, "claude")
    assert "s3cret" not in out + err


def test_non_utf8_stdout_gets_ascii_json(capsys, monkeypatch) -> None:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="cp1252"))
    assert main(["config", "claude"]) == 0
    sys.stdout.flush()
    text = raw.getvalue().decode("ascii")  # a redirect on Windows: still UTF-8-clean, still valid JSON
    assert json.loads(text)["mcpServers"]["koji"]["env"] == {"KOJI_API_KEY": "pk_live_…"}
    assert "\\u2026" in text


def test_chatgpt_prints_tunnel_instructions(capsys) -> None:
    code, out, err = run(capsys, "chatgpt")
    assert code == 0 and err == ""
    lines = out.splitlines()
    argv = " ".join([COMMAND, *PREFIX, "serve"])
    assert f"     KOJI_API_KEY=pk_live_… {argv} --transport streamable-http --port 8000 --oauth \\" in lines
    assert "       --auth-token me=YOUR_TOKEN --allowed-host your.tunnel.host \\" in lines
    assert "       --allowed-origin https://chatgpt.com --public-url https://your.tunnel.host" in lines
    assert "     https://your.tunnel.host/mcp" in lines
    assert "5. ChatGPT opens koji-mcp's consent page: type YOUR_TOKEN as the access code and Approve." in lines


def test_chatgpt_sandbox_instructions_have_no_key(capsys) -> None:
    _, out, _ = run(capsys, "chatgpt", "--sandbox")
    argv = " ".join([COMMAND, *PREFIX, "serve"])
    assert f"     {argv} --sandbox --transport streamable-http --port 8000 --oauth \\" in out.splitlines()
    assert "KOJI_API_KEY" not in out


def test_chatgpt_write_is_a_usage_error(capsys, tmp_path) -> None:
    code, out, err = run(capsys, "chatgpt", "--write", "--config-path", str(tmp_path / "x.json"))
    assert code == 2 and out == ""
    assert err == ("koji-mcp config: ChatGPT has no config file to write; the connector is added in ChatGPT's "
                   "settings (run `koji-mcp config chatgpt` for the steps)\n")
    assert not (tmp_path / "x.json").exists()


def test_config_path_without_write_is_a_usage_error(capsys, tmp_path) -> None:
    code, out, err = run(capsys, "claude", "--config-path", str(tmp_path / "x.json"))
    assert (code, out) == (2, "")
    assert err == "koji-mcp config: --config-path is the file --write writes; add --write\n"


# -- where the files live ------------------------------------------------------------------------


def test_default_paths_per_os() -> None:
    env = {"APPDATA": r"C:\Users\ana\AppData\Roaming"}
    assert default_config_path("claude", "darwin", {}, "/Users/ana") == PurePosixPath(
        "/Users/ana/Library/Application Support/Claude/claude_desktop_config.json")
    assert default_config_path("claude", "win32", env, r"C:\Users\ana") == PureWindowsPath(
        r"C:\Users\ana\AppData\Roaming\Claude\claude_desktop_config.json")
    assert default_config_path("claude", "linux", {}, "/home/ana") == PurePosixPath(
        "/home/ana/.config/Claude/claude_desktop_config.json")
    assert default_config_path("claude", "linux", {"XDG_CONFIG_HOME": "/xdg"}, "/home/ana") == PurePosixPath(
        "/xdg/Claude/claude_desktop_config.json")
    assert default_config_path("cursor", "win32", env, r"C:\Users\ana") == PureWindowsPath(
        r"C:\Users\ana\.cursor\mcp.json")
    assert default_config_path("cursor", "darwin", {}, "/Users/ana") == PurePosixPath("/Users/ana/.cursor/mcp.json")
    assert default_config_path("vscode", "darwin", {}, "/Users/ana") == PurePosixPath(
        "/Users/ana/Library/Application Support/Code/User/mcp.json")
    assert default_config_path("vscode", "win32", env, r"C:\Users\ana") == PureWindowsPath(
        r"C:\Users\ana\AppData\Roaming\Code\User\mcp.json")
    assert default_config_path("chatgpt", "linux", {}, "/home/ana") is None


def test_server_command_falls_back_to_python_m(tmp_path) -> None:
    python = tmp_path / "bin" / "python3"
    assert server_command(str(python)) == (str(python), ["-m", "koji_mcp"])
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "koji-mcp").write_text("#!/bin/sh\n")
    assert server_command(str(python)) == (str(tmp_path / "bin" / "koji-mcp"), [])


# -- --write -------------------------------------------------------------------------------------


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


def test_write_merges_keeping_other_servers_and_keys(capsys, tmp_path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original = {"globalShortcut": "Ctrl+Space",
                "mcpServers": {"github": {"command": "/usr/local/bin/gh-mcp", "env": {"GITHUB_TOKEN": "x"}}}}
    path.write_text(json.dumps(original, indent=4))
    before = path.read_bytes()
    code, out, err = run(capsys, "claude", "--write", "--config-path", str(path))
    assert code == 0
    assert out == f'added server "koji" in {path}\n'
    assert json.loads(path.read_text()) == {
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {"github": original["mcpServers"]["github"],
                       "koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})},
    }
    [saved] = backups(path)
    assert saved.read_bytes() == before
    assert f"Backup of the previous file: {saved}" in err.splitlines()
    assert "Kept 1 other server(s) and everything else in the file." in err.splitlines()
    assert "Now replace pk_live_… in that file with your Koji API key." in err.splitlines()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_rewrite_keeps_the_real_key_already_there(capsys, tmp_path) -> None:
    path = tmp_path / "mcp.json"
    real = {"KOJI_API_KEY": "pk_live_" + "r" * 32, "KOJI_BASE_URL": "https://koji.so"}
    old = {"command": "/old/venv/bin/koji-mcp", "args": [], "env": real}
    path.write_text(json.dumps({"mcpServers": {"koji": old}}))
    code, out, err = run(capsys, "cursor", "--write", "--config-path", str(path))
    assert code == 0 and out == f'replaced server "koji" in {path}\n'
    assert json.loads(path.read_text())["mcpServers"]["koji"] == entry("serve", env=real)
    assert "Now replace" not in err


def test_write_creates_parent_dirs_and_a_private_file(capsys, tmp_path) -> None:
    path = tmp_path / "deep" / "er" / "mcp.json"
    code, out, err = run(capsys, "cursor", "--write", "--config-path", str(path))
    assert code == 0 and out == f'added server "koji" in {path}\n'
    assert f"Created {path}." in err.splitlines()
    assert json.loads(path.read_text()) == {"mcpServers": {"koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}
    if os.name != "nt":
        assert path.stat().st_mode & 0o777 == 0o600
    assert backups(path) == []


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_write_through_a_symlink_keeps_the_link(capsys, tmp_path) -> None:
    target = tmp_path / "dotfiles" / "mcp.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "mcp.json"
    link.symlink_to(target)
    code, out, _ = run(capsys, "cursor", "--write", "--config-path", str(link))
    assert code == 0 and out == f'added server "koji" in {target}\n'
    assert link.is_symlink() and "koji" in json.loads(link.read_text())["mcpServers"]


def test_write_defaults_to_the_hosts_own_file(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run(capsys, "cursor", "--sandbox", "--write")
    assert code == 0 and out == f'added server "koji" in {tmp_path / ".cursor" / "mcp.json"}\n'
    assert json.loads((tmp_path / ".cursor" / "mcp.json").read_text()) == {
        "mcpServers": {"koji": entry("serve", "--sandbox")}}


def test_vscode_write_adds_the_input_once_and_keeps_others(capsys, tmp_path) -> None:
    path = tmp_path / ".vscode" / "mcp.json"
    path.parent.mkdir()
    other_input = {"type": "promptString", "id": "gh-token", "password": True}
    path.write_text(json.dumps({"servers": {"gh": {"type": "http", "url": "https://x/mcp"}}, "inputs": [other_input]}))
    for _ in range(2):
        assert run(capsys, "vscode", "--write", "--config-path", str(path))[0] == 0
    doc = json.loads(path.read_text())
    assert list(doc["servers"]) == ["gh", "koji"]
    assert doc["servers"]["koji"] == entry("serve", env={"KOJI_API_KEY": "${input:koji-api-key}"}, type="stdio")
    assert [i["id"] for i in doc["inputs"]] == ["gh-token", "koji-api-key"]
    assert len(backups(path)) == 2


@pytest.mark.parametrize(("content", "why"), [
    ('{"mcpServers": {"a": 1},}', "it is not valid JSON (line 1, column 25: Expecting property name enclosed in "
                                  "double quotes; comments are not supported by --write): fix it, or paste the "
                                  "snippet in by hand"),
    ("// my servers\n{}", "it is not valid JSON (line 1, column 1: Expecting value; comments are not supported by "
                          "--write): fix it, or paste the snippet in by hand"),
    ("[1, 2]", "it is not a JSON object"),
    ('{"mcpServers": []}', 'its "mcpServers" is not a JSON object'),
])
def test_write_refuses_files_it_cannot_merge_and_leaves_them_alone(capsys, tmp_path, content: str, why: str) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(content)
    code, out, err = run(capsys, "claude", "--write", "--config-path", str(path))
    assert (code, out) == (1, "")
    assert err == f"koji-mcp config: not writing {path}: {why}\n"
    assert path.read_text() == content
    assert backups(path) == []


# -- more hosts: Claude Code, Windsurf, Zed ------------------------------------------------------


def test_claude_code_prints_the_claude_mcp_add_line_and_runs_nothing(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `claude` to run, and nothing is run anyway
    for flags in ([], ["--write"]):
        code, out, err = run(capsys, "claude-code", *flags)
        assert code == 0
        server = " ".join([COMMAND, *PREFIX, "serve"])
        assert out == f'claude mcp add koji --transport stdio --scope user --env KOJI_API_KEY="$KOJI_API_KEY" -- {server}\n'
        assert "koji-mcp never runs it for you" in err and "export KOJI_API_KEY=" in err
    assert "not even with --write" in err
    assert list(tmp_path.iterdir()) == []  # wrote nothing
    code, out, err = run(capsys, "claude-code", "--sandbox", "--name", "koji-try")
    assert code == 0 and out == f"claude mcp add koji-try --transport stdio --scope user -- {server} --sandbox\n"
    assert "KOJI_API_KEY" not in out + err
    code, _, err = run(capsys, "claude-code", "--write", "--config-path", str(tmp_path / "x.json"))
    assert code == 2 and "no --config-path" in err


def test_windsurf_snippet_and_file(capsys, tmp_path, monkeypatch) -> None:
    code, out, err = run(capsys, "windsurf")
    assert code == 0
    assert json.loads(out) == {"mcpServers": {"koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}
    assert err.splitlines()[0] == 'Windsurf: put this under "mcpServers" in its config file, then restart Windsurf:'
    assert err.splitlines()[1:3] == ["  macOS, Linux: ~/.codeium/windsurf/mcp_config.json",
                                     "  Windows:      %USERPROFILE%\\.codeium\\windsurf\\mcp_config.json"]
    assert "Windsurf starts the server without your shell's startup files" in err and "Claude" not in err
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = run(capsys, "windsurf", "--write")
    path = tmp_path / ".codeium" / "windsurf" / "mcp_config.json"
    assert code == 0 and out == f'added server "koji" in {path}\n'
    assert json.loads(path.read_text()) == {"mcpServers": {"koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}


def test_zed_snippet_uses_context_servers_in_its_settings_file(capsys, tmp_path, monkeypatch) -> None:
    code, out, err = run(capsys, "zed")
    assert code == 0
    assert json.loads(out) == {"context_servers": {"koji": entry("serve", env={"KOJI_API_KEY": "pk_live_…"})}}
    assert err.splitlines()[1:3] == ["  macOS, Linux: ~/.config/zed/settings.json (Zed: Open Settings)",
                                     "  Windows:      %APPDATA%\\Zed\\settings.json"]
    assert "Claude" not in err
    settings = tmp_path / "zed" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"theme": "One Dark", "context_servers": {"other": {"command": "x"}}}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    code, out, _ = run(capsys, "zed", "--sandbox", "--write")
    assert code == 0 and out == f'added server "koji" in {settings}\n'
    assert json.loads(settings.read_text()) == {"theme": "One Dark", "context_servers": {
        "other": {"command": "x"}, "koji": entry("serve", "--sandbox")}}


def test_default_paths_of_the_new_hosts() -> None:
    assert default_config_path("windsurf", "darwin", {}, "/Users/ann") == PurePosixPath(
        "/Users/ann/.codeium/windsurf/mcp_config.json")
    assert default_config_path("windsurf", "win32", {}, "C:\\Users\\ann") == PureWindowsPath(
        "C:\\Users\\ann\\.codeium\\windsurf\\mcp_config.json")
    assert default_config_path("zed", "darwin", {"XDG_CONFIG_HOME": "/x"}, "/Users/ann") == PurePosixPath(
        "/Users/ann/.config/zed/settings.json")
    assert default_config_path("zed", "linux", {"XDG_CONFIG_HOME": "/x"}, "/home/ann") == PurePosixPath(
        "/x/zed/settings.json")
    assert default_config_path("zed", "win32", {"APPDATA": "C:\\Users\\ann\\AppData\\Roaming"}, "C:\\Users\\ann") == \
        PureWindowsPath("C:\\Users\\ann\\AppData\\Roaming\\Zed\\settings.json")
    assert default_config_path("claude-code") is None


@pytest.mark.parametrize("host", ["cursor", "vscode"])
def test_cursor_and_vscode_explain_paths_in_their_own_terms(capsys, host: str) -> None:
    _, _, err = run(capsys, host)
    assert "Claude" not in err
    title = "Cursor" if host == "cursor" else "VS Code"
    assert f"The command is an absolute path on purpose: {title} " in err


def test_sandbox_write_over_a_real_entry_drops_the_real_key(capsys, tmp_path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    real = {"KOJI_API_KEY": "pk_live_" + "r" * 32, "HTTPS_PROXY": "http://proxy:3128"}
    path.write_text(json.dumps({"mcpServers": {"koji": {"command": "/old/koji-mcp", "args": ["serve"], "env": real}}}))
    code, _, _ = run(capsys, "claude", "--write", "--sandbox", "--config-path", str(path))
    assert code == 0
    assert json.loads(path.read_text())["mcpServers"]["koji"] == entry("serve", "--sandbox",
                                                                        env={"HTTPS_PROXY": "http://proxy:3128"})
    path.write_text(json.dumps({"mcpServers": {"koji": {"command": "/old/koji-mcp", "env": {"KOJI_API_KEY": "pk_live_x"}}}}))
    assert run(capsys, "claude", "--write", "--sandbox", "--config-path", str(path))[0] == 0
    assert json.loads(path.read_text())["mcpServers"]["koji"] == entry("serve", "--sandbox")
