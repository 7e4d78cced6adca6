"""Settings from environment and flags, validated once at start.

Everything the server needs to know about its surroundings lives here, so that a bad value fails
fast at startup with one clear line instead of surfacing later inside a tool call.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from koji_mcp.logs import mask_userinfo

DEFAULT_BASE_URL = "https://koji.so"
KEY_PREFIX = "pk_live_"
MEMORY_STATE_DIR = ":memory:"
SANDBOX_SUBDIR = "sandbox"  # with --sandbox, the ledger and the sandbox's interviews live here, apart
EXIT_USAGE = 2  # bad flags, settings or input: the exit code every subcommand uses
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
MIN_STATE_KEY, MAX_STATE_KEY, MIN_STATE_KEY_SYMBOLS = 32, 512, 10  # the SDK needs 32+ bytes per sealing key
GENERATE_STATE_KEY = "generate one with: python -c 'import secrets;print(secrets.token_urlsafe(32))'"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message is one line meant for a human."""


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_state_dir(env: Mapping[str, str]) -> str:
    """The platform user-data directory: `$XDG_DATA_HOME/koji-mcp`, else `~/.local/share/koji-mcp`."""
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return str(base / "koji-mcp")


class Settings(BaseModel):
    """Runtime configuration. Build it with `Settings.load(env, **flags)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = Field(30.0, gt=0, le=600)
    connect_timeout: float = Field(5.0, gt=0, le=120)
    state_dir: str = MEMORY_STATE_DIR
    sandbox: bool = False
    read_only: bool = False
    tools: tuple[str, ...] | None = None
    max_rate_limit_wait: float = Field(10.0, ge=0, le=60)
    max_response_bytes: int = Field(1_000_000, ge=1024)
    analysis_poll_seconds: float = Field(3.0, ge=0, le=10)
    rate_limit_window: float = Field(60.0, gt=0, le=3600)  # Koji: a 1-minute sliding window
    log_level: LogLevel = "INFO"
    # `[NAME=]TOKEN` items for HTTP clients (KOJI_MCP_AUTH_TOKEN, comma-separated, plus --auth-token);
    # server/auth.py parses and checks them.
    auth_tokens: tuple[SecretStr, ...] = ()
    # The URL clients reach this server at (scheme://host[:port], no path): OAuth's resource URL is it + /mcp.
    public_url: str | None = None
    # An external OAuth authorization server whose JWT access tokens this server accepts (resource server only).
    oauth_issuer: str | None = None
    oauth_owner_claim: str = Field("sub", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")
    # HTTP transports: "builtin" makes this server its own OAuth authorization server (server/oauth.py)
    oauth: Literal["off", "builtin"] = "off"
    allow_insecure_upstream: bool = False  # plain http:// to a non-loopback Koji (the key travels in clear)
    # postgresql://…: the ledger, OAuth state, batch jobs and the Koji pacer in PostgreSQL, shared by replicas
    # (interviews/database.py); unset, they live in SQLite in the state dir. It may hold a password: a secret.
    database_url: SecretStr | None = None
    # streamable HTTP without sessions (KOJI_MCP_STATELESS, --stateless): any replica answers any request
    stateless: bool = False
    # the SDK's request-state sealing keys (KOJI_MCP_REQUEST_STATE_KEYS, comma-separated; env only, never a flag:
    # argv is visible to every user of the machine). The first seals, all open, so keys rotate; replicas share them.
    request_state_keys: tuple[SecretStr, ...] = ()

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"KOJI_BASE_URL must start with http:// or https:// (got {value!r})")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        url = value.get_secret_value().strip()
        if re.search(r"%(?![0-9A-Fa-f]{2})", url):
            raise ValueError("KOJI_MCP_DATABASE_URL has a % that is not percent-encoded (write %25; a password "
                             "with special characters must be percent-encoded)")
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or "host=" in parts.query):
            raise ValueError("KOJI_MCP_DATABASE_URL must be a PostgreSQL URL such as "
                             f"postgresql://koji:PASSWORD@db.example.com:5432/koji (got {mask_userinfo(url)!r})")
        return SecretStr(url)

    @property
    def ledger_database_url(self) -> str | None:
        return self.database_url.get_secret_value() if self.database_url else None

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"--public-url must be an http(s) URL such as https://mcp.example.com (got {value!r})")
        if parts.path:
            raise ValueError(f"--public-url is the server's origin without a path; /mcp is added (got {value!r})")
        return value

    @field_validator("oauth_issuer")
    @classmethod
    def _check_issuer(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()  # kept exactly (a trailing slash too): JWT `iss` is compared character for character
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"KOJI_MCP_OAUTH_ISSUER must be an https:// URL without query or fragment (got {value!r})")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(f"KOJI_MCP_OAUTH_ISSUER must use https:// (http:// only on loopback; got {value!r})")
        return value

    @field_validator("request_state_keys")
    @classmethod
    def _check_request_state_keys(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        """Each key: 32+ characters of printable ASCII, no spaces, not all alike; no key twice. Never echoed."""
        seen: set[str] = set()
        for number, key in enumerate(keys, start=1):
            value = key.get_secret_value()
            which = f"key {number} of {len(keys)}"
            problem = None
            if not MIN_STATE_KEY <= len(value) <= MAX_STATE_KEY:
                problem = f"is {len(value)} characters; each key needs {MIN_STATE_KEY} to {MAX_STATE_KEY}"
            elif not all("!" <= ch <= "~" for ch in value):
                problem = "holds a space, a control or a non-ASCII character"
            elif len(set(value)) < MIN_STATE_KEY_SYMBOLS:
                problem = f"repeats too few characters (fewer than {MIN_STATE_KEY_SYMBOLS} different ones) to be random"
            elif value in seen:
                problem = "repeats an earlier key"
            if problem:
                raise ValueError(f"KOJI_MCP_REQUEST_STATE_KEYS: {which} {problem}; {GENERATE_STATE_KEY}")
            seen.add(value)
        return keys

    @property
    def key_warning(self) -> str | None:
        """A warning for keys that do not look like Koji keys (we warn, never reject)."""
        if self.api_key is None:
            return None
        key = self.api_key.get_secret_value()
        if not key.startswith(KEY_PREFIX):
            return f"KOJI_API_KEY does not start with {KEY_PREFIX!r}; Koji keys normally do"
        return None

    @property
    def ledger_dir(self) -> str:
        """Where the ledger lives: the state dir, or its `sandbox/` subdirectory with --sandbox, so that
        sandbox data never mixes with real data (`:memory:` stays `:memory:`)."""
        if self.sandbox and self.state_dir != MEMORY_STATE_DIR:
            return str(Path(self.state_dir).expanduser() / SANDBOX_SUBDIR)
        return self.state_dir

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Merge env (`KOJI_*`) with explicit flags (flags win; None means "not given")."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get("KOJI_API_KEY"):
            values["api_key"] = env["KOJI_API_KEY"].strip()
        if env.get("KOJI_BASE_URL"):
            values["base_url"] = env["KOJI_BASE_URL"]
        if env.get("KOJI_TIMEOUT"):
            values["timeout"] = _number(env["KOJI_TIMEOUT"], "KOJI_TIMEOUT")
        if env.get("KOJI_CONNECT_TIMEOUT"):
            values["connect_timeout"] = _number(env["KOJI_CONNECT_TIMEOUT"], "KOJI_CONNECT_TIMEOUT")
        if env.get("KOJI_RATE_LIMIT_WINDOW"):
            values["rate_limit_window"] = _number(env["KOJI_RATE_LIMIT_WINDOW"], "KOJI_RATE_LIMIT_WINDOW")
        values["state_dir"] = env.get("KOJI_MCP_STATE_DIR") or default_state_dir(env)
        if env.get("KOJI_MCP_READ_ONLY"):
            values["read_only"] = _flag(env["KOJI_MCP_READ_ONLY"], "KOJI_MCP_READ_ONLY")
        if env.get("KOJI_MCP_ALLOW_INSECURE_UPSTREAM"):
            values["allow_insecure_upstream"] = _flag(env["KOJI_MCP_ALLOW_INSECURE_UPSTREAM"],
                                                      "KOJI_MCP_ALLOW_INSECURE_UPSTREAM")
        if env.get("KOJI_MCP_TOOLS"):
            values["tools"] = _names(env["KOJI_MCP_TOOLS"])
        if env.get("KOJI_MCP_LOG_LEVEL"):
            level = env["KOJI_MCP_LOG_LEVEL"].strip().upper()
            if level not in LOG_LEVELS:
                raise ConfigError(f"KOJI_MCP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} "
                                  f"(got {env['KOJI_MCP_LOG_LEVEL']!r})")
            values["log_level"] = level
        # Tokens from the environment and from flags add up (each names its own client).
        values["auth_tokens"] = (*_names(env.get("KOJI_MCP_AUTH_TOKEN") or ""), *_names_of(flags.pop("auth_tokens", None)))
        if env.get("KOJI_MCP_PUBLIC_URL"):
            values["public_url"] = env["KOJI_MCP_PUBLIC_URL"]
        if env.get("KOJI_MCP_OAUTH_ISSUER"):
            values["oauth_issuer"] = env["KOJI_MCP_OAUTH_ISSUER"]
        if env.get("KOJI_MCP_OAUTH_OWNER_CLAIM"):
            values["oauth_owner_claim"] = env["KOJI_MCP_OAUTH_OWNER_CLAIM"].strip()
        if env.get("KOJI_MCP_OAUTH"):
            values["oauth"] = _oauth_mode(env["KOJI_MCP_OAUTH"])
        if env.get("KOJI_MCP_DATABASE_URL"):
            values["database_url"] = env["KOJI_MCP_DATABASE_URL"]
        if env.get("KOJI_MCP_STATELESS"):
            values["stateless"] = _flag(env["KOJI_MCP_STATELESS"], "KOJI_MCP_STATELESS")
        if env.get("KOJI_MCP_REQUEST_STATE_KEYS", "").strip():
            values["request_state_keys"] = _names(env["KOJI_MCP_REQUEST_STATE_KEYS"])
        # where each value came from, so that an error names what the user actually set
        sources = {field: var for field, var in _ENV_NAMES.items() if env.get(var)}
        for name, value in flags.items():
            if value is not None:
                values[name] = _names(value) if name == "tools" and isinstance(value, str) else value
                sources[name] = "--" + name.replace("_", "-")
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, sources)) from None

    def require_api_key(self, without_account: str = "run `koji-mcp serve --sandbox`") -> None:
        """Refuse to serve real Koji without a key (the sandbox brings its own); `without_account` says
        what the command at hand offers instead."""
        if self.api_key is None and not self.sandbox:
            raise ConfigError(
                "KOJI_API_KEY is not set: export your Koji API key (pk_live_…, Dashboard > Profile > "
                f"API Keys), or {without_account} to try koji-mcp without an account"
            )

    def require_secure_upstream(self) -> None:
        """Refuse to send the API key over plain http to anything but this machine, unless allowed."""
        if self.sandbox or self.allow_insecure_upstream:
            return
        scheme, _, rest = self.base_url.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if scheme.lower() == "http" and not is_loopback(host):
            raise ConfigError(
                f"KOJI_BASE_URL {mask_userinfo(self.base_url)} is plain http to another machine: the API key "
                "would travel unencrypted. Use https://, or pass --allow-insecure-upstream "
                "(env KOJI_MCP_ALLOW_INSECURE_UPSTREAM=1) if you really mean it"
            )


def _number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {raw!r})") from None


def _flag(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false (got {raw!r})")


def _oauth_mode(raw: str) -> str:
    lowered = raw.strip().lower()
    if lowered in {"builtin", "built-in", "1", "true", "yes", "on"}:
        return "builtin"
    if lowered in {"off", "0", "false", "no", "none", ""}:
        return "off"
    raise ConfigError(f"KOJI_MCP_OAUTH must be 'builtin' or 'off' (got {raw!r})")


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _names_of(items: Any) -> tuple[str, ...]:
    return tuple(item.strip() for item in items or () if item.strip())


_ENV_NAMES = {"api_key": "KOJI_API_KEY", "base_url": "KOJI_BASE_URL", "timeout": "KOJI_TIMEOUT",
              "connect_timeout": "KOJI_CONNECT_TIMEOUT", "rate_limit_window": "KOJI_RATE_LIMIT_WINDOW",
              "state_dir": "KOJI_MCP_STATE_DIR", "read_only": "KOJI_MCP_READ_ONLY", "tools": "KOJI_MCP_TOOLS",
              "log_level": "KOJI_MCP_LOG_LEVEL", "public_url": "KOJI_MCP_PUBLIC_URL",
              "oauth_issuer": "KOJI_MCP_OAUTH_ISSUER", "oauth_owner_claim": "KOJI_MCP_OAUTH_OWNER_CLAIM",
              "oauth": "KOJI_MCP_OAUTH", "allow_insecure_upstream": "KOJI_MCP_ALLOW_INSECURE_UPSTREAM",
              "database_url": "KOJI_MCP_DATABASE_URL",
              "stateless": "KOJI_MCP_STATELESS", "request_state_keys": "KOJI_MCP_REQUEST_STATE_KEYS"}
_SECRET_FIELDS = ("api_key", "auth_tokens", "request_state_keys", "database_url")  # an error about them never shows the value


def _first_error(exc: ValidationError, sources: Mapping[str, str]) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "settings"
    message = err["msg"].removeprefix("Value error, ")
    if message.startswith(("KOJI_", "--")):  # the validator already named the variable or flag
        return message
    where = sources.get(field)
    secret = bool(err["loc"]) and err["loc"][0] in _SECRET_FIELDS  # never shown, not even in an error
    given = f" (got {err['input']!r})" if where and not secret and not isinstance(err.get("input"), dict) else ""
    if where and message.startswith("Input should be "):  # pydantic's words, said of what the user set
        return f"{where} must be {message.removeprefix('Input should be ')}{given}"
    return f"{where}: {message}{given}" if where else f"invalid setting {field}: {message}"
