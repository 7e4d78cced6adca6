"""`koji-mcp config HOST`: a ready MCP config snippet for a host, printed or merged into its file.

Why: the most common setup failure is a bare `koji-mcp` command. Desktop hosts (Claude Desktop
above all) do not inherit your shell's PATH, so the snippet always names this installation by its
absolute path. Stdout carries only the snippet, so `koji-mcp config claude > x.json` is valid JSON;
explanations go to stderr. `--write` merges the entry into the host's file without touching
anything else in it, after a backup, atomically.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any, TextIO

from koji_mcp.config import EXIT_USAGE

EXIT_FAILED = 1
KEY_PLACEHOLDER = "pk_live_…"
VSCODE_INPUT_ID = "koji-api-key"
VSCODE_INPUT = {
    "type": "promptString",
    "id": VSCODE_INPUT_ID,
    "description": "Koji API key (pk_live_…)",
    "password": True,
}
TITLES = {"claude": "Claude Desktop", "claude-code": "Claude Code", "cursor": "Cursor", "vscode": "VS Code",
          "windsurf": "Windsurf", "zed": "Zed", "chatgpt": "ChatGPT"}
HOSTS = tuple(TITLES)
# The key each host's file keeps its servers under (hosts with a JSON file koji-mcp can merge into).
SERVERS_KEY = {"claude": "mcpServers", "cursor": "mcpServers", "vscode": "servers", "windsurf": "mcpServers",
               "zed": "context_servers"}

# Where each host keeps its config, as people type it on each OS (shown on stderr).
LOCATIONS: dict[str, list[tuple[str, str]]] = {
    "claude": [
        ("macOS", "~/Library/Application Support/Claude/claude_desktop_config.json"),
        ("Windows", r"%APPDATA%\Claude\claude_desktop_config.json"),
        ("Linux", "~/.config/Claude/claude_desktop_config.json"),
    ],
    "cursor": [
        ("all systems", "~/.cursor/mcp.json (global), or .cursor/mcp.json in a project"),
    ],
    "vscode": [
        ("workspace", ".vscode/mcp.json in the workspace folder"),
        ("macOS user", "~/Library/Application Support/Code/User/mcp.json"),
        ("Windows user", r"%APPDATA%\Code\User\mcp.json"),
        ("Linux user", "~/.config/Code/User/mcp.json"),
    ],
    "windsurf": [
        ("macOS, Linux", "~/.codeium/windsurf/mcp_config.json"),
        ("Windows", r"%USERPROFILE%\.codeium\windsurf\mcp_config.json"),
    ],
    "zed": [
        ("macOS, Linux", "~/.config/zed/settings.json (Zed: Open Settings)"),
        ("Windows", r"%APPDATA%\Zed\settings.json"),
    ],
}

# Why the command must be absolute, in each host's own terms (shown on stderr).
PATH_WHY = {
    "claude": "Claude Desktop (started from the Dock or Start menu) does not inherit your shell's PATH, so a "
              "bare `koji-mcp` fails with ENOENT / \"command not found\".",
    "cursor": "Cursor launches the server with the environment Cursor itself was started with (from the Dock or "
              "Start menu: not your shell's PATH), so a bare `koji-mcp` fails with \"command not found\".",
    "vscode": "VS Code starts the server without running your shell's startup files, so the PATH your "
              "terminal has (an activated venv, pipx's ~/.local/bin) may be missing and a bare `koji-mcp` "
              "fails to start.",
    "windsurf": "Windsurf starts the server without your shell's startup files, so a bare `koji-mcp` that only "
                "your terminal's PATH knows (a venv, pipx's ~/.local/bin) fails with \"command not found\".",
    "zed": "Zed runs the command with its own environment (from the Dock or a desktop launcher it does not "
           "see your shell's PATH), so a bare `koji-mcp` may not be found.",
}


class ConfigFileError(Exception):
    """The existing config file cannot be merged safely; the message is one line for a human."""


def server_command(executable: str | None = None) -> tuple[str, list[str]]:
    """The absolute command that starts this installation: its console script, else `python -m koji_mcp`.

    `absolute()`, not `resolve()`: a venv's python is a symlink to the base interpreter, and
    resolving it would lose the venv (and koji-mcp with it).
    """
    python = Path(executable or sys.executable).absolute()
    script = python.with_name("koji-mcp.exe" if os.name == "nt" else "koji-mcp")
    if script.is_file():
        return str(script), []
    return str(python), ["-m", "koji_mcp"]


def server_entry(host: str, *, sandbox: bool, executable: str | None = None) -> dict[str, Any]:
    """One server entry in the host's own shape; the key is a placeholder, never a real one."""
    command, prefix = server_command(executable)
    entry: dict[str, Any] = {"type": "stdio"} if host == "vscode" else {}
    entry["command"] = command
    entry["args"] = [*prefix, "serve", "--sandbox"] if sandbox else [*prefix, "serve"]
    if not sandbox:
        key = f"${{input:{VSCODE_INPUT_ID}}}" if host == "vscode" else KEY_PLACEHOLDER
        entry["env"] = {"KOJI_API_KEY": key}
    return entry


def snippet(host: str, name: str, *, sandbox: bool, executable: str | None = None) -> dict[str, Any]:
    """The whole file-shaped snippet for a stdio host (claude, cursor, vscode)."""
    doc: dict[str, Any] = {SERVERS_KEY[host]: {name: server_entry(host, sandbox=sandbox, executable=executable)}}
    if host == "vscode" and not sandbox:
        doc["inputs"] = [dict(VSCODE_INPUT)]
    return doc


def default_config_path(host: str, platform: str | None = None, env: dict[str, str] | None = None,
                        home: str | None = None) -> PurePath | None:
    """The host's usual config file on this OS (user-level for VS Code); None for ChatGPT."""
    platform = sys.platform if platform is None else platform
    env = dict(os.environ) if env is None else env
    home = str(Path.home()) if home is None else home
    windows = platform == "win32"
    pure: type[PurePath] = PureWindowsPath if windows else PurePosixPath
    if host == "cursor":
        return pure(home, ".cursor", "mcp.json")
    if host == "windsurf":  # %USERPROFILE% is the home directory on Windows too
        return pure(home, ".codeium", "windsurf", "mcp_config.json")
    if host == "zed":
        if windows:
            return pure(env.get("APPDATA") or pure(home, "AppData", "Roaming"), "Zed", "settings.json")
        config = env.get("XDG_CONFIG_HOME") if platform != "darwin" else None
        return pure(config or pure(home, ".config"), "zed", "settings.json")
    if host not in ("claude", "vscode"):
        return None
    if windows:
        base = pure(env.get("APPDATA") or pure(home, "AppData", "Roaming"))
    elif platform == "darwin":
        base = pure(home, "Library", "Application Support")
    else:
        base = pure(env.get("XDG_CONFIG_HOME") or pure(home, ".config"))
    if host == "claude":
        return base / "Claude" / "claude_desktop_config.json"
    return base / "Code" / "User" / "mcp.json"


def merge_entry(existing: dict[str, Any], host: str, name: str, new: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`existing` with our server merged in; every other key and server is kept as it was.

    If a server of the same name exists, its `env` values win over ours, so rerunning `--write`
    (say, after moving the venv) never replaces a real key with the placeholder.
    Returns (merged document, whether an entry of that name was replaced).
    """
    key = SERVERS_KEY[host]
    merged = dict(existing)
    servers = merged.get(key, {})
    if not isinstance(servers, dict):
        raise ConfigFileError(f'its "{key}" is not a JSON object')
    servers = dict(servers)
    entry = dict(new[key][name])
    old = servers.get(name)
    if isinstance(old, dict) and isinstance(old.get("env"), dict):
        kept = dict(old["env"])
        if "env" not in entry:  # a sandbox entry: never leave a real key in it
            kept.pop("KOJI_API_KEY", None)
        if kept or "env" in entry:
            entry["env"] = {**entry.get("env", {}), **kept}
    servers[name] = entry
    merged[key] = servers
    if "inputs" in new:
        inputs = merged.get("inputs", [])
        if not isinstance(inputs, list):
            raise ConfigFileError('its "inputs" is not a JSON array')
        if not any(isinstance(i, dict) and i.get("id") == VSCODE_INPUT_ID for i in inputs):
            inputs = [*inputs, *new["inputs"]]
        merged["inputs"] = inputs
    return merged, name in existing.get(key, {})


def read_config(path: Path) -> dict[str, Any]:
    """The file's JSON object ({} if missing or empty); refuses anything it could not write back intact."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read it ({exc})") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            f"it is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}; comments are not "
            "supported by --write): fix it, or paste the snippet in by hand"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigFileError("it is not a JSON object")
    return doc


def backup(path: Path) -> Path:
    """Copy `path` to `<path>.bak-<timestamp>` (never overwriting an earlier backup)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    shutil.copy2(path, target)
    return target


def write_atomically(path: Path, doc: dict[str, Any]) -> None:
    """tmp file + os.replace, so the host never reads a half-written config; keeps the file's mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600  # it will hold an API key
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL: no planted link
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _utf8(stream: TextIO) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def _say(*lines: str) -> None:
    for line in lines:
        print(line if _utf8(sys.stderr) else line.replace("…", "..."), file=sys.stderr)


def _explain(host: str, name: str, sandbox: bool) -> None:
    title = TITLES[host]
    _say(f'{title}: put this under "{SERVERS_KEY[host]}" in its config file, then restart {title}:')
    _say(*(f"  {where + ':':<14}{path}" for where, path in LOCATIONS[host]))
    _say(f"The command is an absolute path on purpose: {PATH_WHY[host]}")
    if sandbox:
        _say("This entry runs koji-mcp on its built-in sandbox: no Koji account or API key needed.")
    elif host == "vscode":
        _say("VS Code asks for your Koji API key (pk_live_…) the first time it starts the server, and stores it "
             "securely.")
    else:
        _say(f"Replace {KEY_PLACEHOLDER} with your Koji API key (Dashboard > Profile > API Keys).")
    extra = " --sandbox" if sandbox else ""
    named = f" --name {name}" if name != "koji" else ""
    _say(f"Or let koji-mcp merge it into the file (other servers are kept, a backup is made): "
         f"koji-mcp config {host}{extra}{named} --write")


def chatgpt_instructions(*, sandbox: bool, executable: str | None = None) -> str:
    """ChatGPT has no config file: it reaches MCP servers over public HTTPS, so serve HTTP behind a tunnel."""
    command, prefix = server_command(executable)
    argv = " ".join(_quote(a) for a in [command, *prefix, "serve"])
    env = "" if sandbox else f"KOJI_API_KEY={KEY_PLACEHOLDER} "
    flags = "--sandbox " if sandbox else ""
    return "\n".join([
        "ChatGPT connects to MCP servers over public HTTPS only; there is no config file to edit. Run koji-mcp",
        "over streamable HTTP on this machine and expose it through a tunnel:",
        "",
        "1. Make a secret client token (it is also the access code you type when ChatGPT signs in):",
        "     python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        "2. Start a tunnel to 127.0.0.1:8000 and note its host name (your.tunnel.host below):",
        "     cloudflared tunnel --url http://127.0.0.1:8000      (or: ngrok http 8000)",
        "3. Run koji-mcp with its built-in OAuth server (absolute path: it works from any directory):",
        f"     {env}{argv} {flags}--transport streamable-http --port 8000 --oauth \\",
        "       --auth-token me=YOUR_TOKEN --allowed-host your.tunnel.host \\",
        "       --allowed-origin https://chatgpt.com --public-url https://your.tunnel.host",
        "4. In ChatGPT: Settings > Apps & Connectors > Advanced settings > Developer mode on, then Create,",
        "   with the connector URL below and Authentication: OAuth (leave client ID and secret empty):",
        "     https://your.tunnel.host/mcp",
        "5. ChatGPT opens koji-mcp's consent page: type YOUR_TOKEN as the access code and Approve.",
        "",
        "Interviews started from ChatGPT belong to the client name (`me`), the same as with the static token",
        "from Cursor or VS Code. Never run a public tunnel without --auth-token: anyone who finds the URL could",
        "spend your Koji credits.",
    ])


def _quote(arg: str) -> str:
    return f'"{arg}"' if any(c.isspace() for c in arg) else arg


def claude_code_command(name: str, *, sandbox: bool, executable: str | None = None) -> str:
    """The `claude mcp add` line for Claude Code (which keeps its own config: the CLI edits it).

    The name comes first, so `--env` (which takes several values) cannot swallow it; the key comes from
    the shell's KOJI_API_KEY, so it never lands in the shell history.
    """
    command, prefix = server_command(executable)
    server = " ".join(_quote(a) for a in [command, *prefix, "serve", *(["--sandbox"] if sandbox else [])])
    env = "" if sandbox else ' --env KOJI_API_KEY="$KOJI_API_KEY"'
    return f"claude mcp add {_quote(name)} --transport stdio --scope user{env} -- {server}"


def _write(host: str, name: str, sandbox: bool, config_path: str | None) -> int:
    default = default_config_path(host)
    assert default is not None  # chatgpt is handled by the caller
    path = Path(config_path).expanduser() if config_path else Path(str(default))
    if path.is_symlink():  # e.g. a dotfiles repo: update the file it points to, keep the link
        path = path.resolve()
    try:
        existing = read_config(path)
        merged, replaced = merge_entry(existing, host, name, snippet(host, name, sandbox=sandbox))
    except ConfigFileError as exc:
        print(f"koji-mcp config: not writing {path}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    others = len(merged[SERVERS_KEY[host]]) - 1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = backup(path) if path.exists() else None
        write_atomically(path, merged)
    except OSError as exc:
        print(f"koji-mcp config: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    verb = "replaced" if replaced else "added"
    print(f'{verb} server "{name}" in {path}')
    _say(f"Backup of the previous file: {saved}" if saved else f"Created {path}.")
    if others:
        _say(f"Kept {others} other server(s) and everything else in the file.")
    key = merged[SERVERS_KEY[host]][name].get("env", {}).get("KOJI_API_KEY")
    if key == KEY_PLACEHOLDER:
        _say(f"Now replace {KEY_PLACEHOLDER} in that file with your Koji API key.")
    _say(f"Restart {TITLES[host]} to load it; `koji-mcp doctor` checks the key and the connection.")
    return 0


def run_config_command(args: argparse.Namespace) -> int:
    host, name, sandbox = args.host, args.name.strip(), args.sandbox
    if not name:
        print("koji-mcp config: --name must not be empty", file=sys.stderr)
        return EXIT_USAGE
    if args.config_path and not args.write:
        print("koji-mcp config: --config-path is the file --write writes; add --write", file=sys.stderr)
        return EXIT_USAGE
    if host == "chatgpt":
        if args.write:
            print("koji-mcp config: ChatGPT has no config file to write; the connector is added in ChatGPT's "
                  "settings (run `koji-mcp config chatgpt` for the steps)", file=sys.stderr)
            return EXIT_USAGE
        text = chatgpt_instructions(sandbox=sandbox)
        print(text if _utf8(sys.stdout) else text.replace("…", "..."))
        return 0
    if host == "claude-code":
        if args.config_path:
            print("koji-mcp config: Claude Code keeps its own config; `claude mcp add` writes it, so there is no "
                  "--config-path", file=sys.stderr)
            return EXIT_USAGE
        print(claude_code_command(name, sandbox=sandbox))
        _say("Run that line in a terminal: Claude Code's own `claude mcp add` writes its config (koji-mcp "
             "never runs it for you" + (", not even with --write" if args.write else "") + ").",
             "--scope user makes koji available in every project; use --scope project to share it through "
             "the project's .mcp.json, or leave --scope out for this directory only.")
        if not sandbox:
            _say("Export your key first (export KOJI_API_KEY=pk_live_…, Dashboard > Profile > API Keys); the "
                 "command reads it from your shell.")
        _say("Then `claude mcp list` shows whether it connects.")
        return 0
    if args.write:
        return _write(host, name, sandbox, args.config_path)
    doc = snippet(host, name, sandbox=sandbox)
    # A non-UTF-8 stdout (e.g. a redirect on Windows) gets \u escapes: still valid JSON, still UTF-8-safe.
    print(json.dumps(doc, indent=2, ensure_ascii=not _utf8(sys.stdout)))
    _explain(host, name, sandbox)
    return 0


__all__ = [
    "ConfigFileError",
    "chatgpt_instructions",
    "claude_code_command",
    "default_config_path",
    "merge_entry",
    "read_config",
    "run_config_command",
    "server_command",
    "server_entry",
    "snippet",
]
