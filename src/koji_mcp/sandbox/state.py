"""State of one sandbox: projects, keys, interviews, rate windows, log, faults.

In memory by default. With ``SandboxConfig.state_file`` the interviews (only they: keys, rate
windows, the request log and faults stay per process) are also kept in that JSON file, so
sandboxes started one after another see each other's interviews, like one Koji would:
:meth:`SandboxState.sync` merges the file in before each API request and writes the merge back
after each write (atomically, under an advisory lock; on a clash the copy updated last wins).

Everything lives in plain Python objects owned by the server's event loop; handlers
mutate it synchronously (no ``await`` in between), so no locking is needed. ``clock``
is injectable so the rate limiter and analysis readiness can be reasoned about in
wall-clock seconds (``time.time``), which is also what ``X-RateLimit-Reset`` reports.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import string
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:  # advisory lock for the state file; absent on Windows, where the merge alone has to do
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from .brief import default_brief, validate_brief
from .config import DELETED_PROJECT, DRAFT_PROJECT, KeySpec, SandboxConfig

__all__ = ["Fault", "Interview", "Message", "Project", "RateDecision", "RateLimiter", "SandboxState", "iso"]

_TOKEN_ALPHABET = string.ascii_letters + string.digits


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds and a ``Z`` suffix, or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


@dataclass
class Project:
    id: str
    brief: dict[str, Any]
    deleted: bool = False

    @property
    def published(self) -> bool:
        return bool(self.brief.get("published", True))


@dataclass
class Message:
    message_id: str
    role: str  # "interviewer" | "respondent"
    content: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "role": self.role, "content": self.content,
                "created_at": iso(self.created_at)}


@dataclass
class Interview:
    """One interview. ``question_index`` is the question currently awaiting an answer."""

    interview_id: str
    project_id: str
    session_token: str
    mode: str
    locale: str
    respondent: dict[str, Any]
    created_at: float
    updated_at: float
    status: str = "active"  # "active" | "ended" | "completed"
    question_index: int = 0
    transcript: list[Message] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # question id -> respondent text
    completed_at: float | None = None
    completion_reason: str | None = None
    feedback: dict[str, Any] | None = None
    complete_response: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None  # computed once, at completion

    def add(self, role: str, content: str, now: float) -> Message:
        msg = Message(new_message_id(), role, content, now)
        self.transcript.append(msg)
        self.updated_at = now
        return msg

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Interview:
        fields = dict(record)
        fields["transcript"] = [Message(**m) for m in fields.get("transcript", [])]
        return cls(**fields)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # exact time the oldest request leaves the window

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(math.ceil(self.reset_at))}


class RateLimiter:
    """Per-key sliding window: at most ``limit`` accepted requests in any ``window`` seconds.

    Rejected requests are not recorded, so hammering a 429 does not extend the wait.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float) -> RateDecision:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return RateDecision(False, self.limit, 0, hits[0] + self.window)
        hits.append(now)
        return RateDecision(True, self.limit, self.limit - len(hits), hits[0] + self.window)

    def idle(self, now: float) -> RateDecision:
        """Headers for a request that could not be attributed to a key (401)."""
        return RateDecision(True, self.limit, self.limit, now)

    def reset(self) -> None:
        self._hits.clear()


@dataclass
class Fault:
    """A queued, injected response for matching requests (see ``POST /_sandbox/faults``)."""

    status: int | None = None  # None: only delay, then answer normally
    method: str | None = None
    path: str | None = None
    json: Any = None
    has_json: bool = False
    body: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay: float = 0.0
    after_processing: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method.upper()) and (
            self.path is None or self.path == path)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "status": self.status,
                "json": self.json if self.has_json else None, "body": self.body,
                "content_type": self.content_type, "headers": self.headers, "times": self.times,
                "delay": self.delay, "after_processing": self.after_processing}


class SandboxState:
    """All mutable sandbox data plus the config it was built from."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.brief = validate_brief(config.brief) if config.brief is not None else default_brief()
        self.keys: dict[str, KeySpec] = config.keys()
        self.projects: dict[str, Project] = {}
        for spec in self.keys.values():
            self.projects.setdefault(spec.project, self._make_project(spec.project))
        self.interviews: dict[str, Interview] = {}
        self.limiter = RateLimiter(config.rate_limit, config.window_seconds)
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.state_file = Path(config.state_file) if config.state_file else None
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file as last read or written
        self.sync()

    def _make_project(self, project_id: str) -> Project:
        brief = dict(self.brief)
        if project_id == DRAFT_PROJECT:
            brief["published"] = False
        return Project(project_id, brief, deleted=project_id == DELETED_PROJECT)

    def new_interview(self, project: Project, mode: str, locale: str, respondent: dict[str, Any]) -> Interview:
        now = self.clock()
        token = "st_live_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(24))
        interview = Interview(str(uuid.uuid4()), project.id, token, mode, locale, respondent, now, now)
        self.interviews[interview.interview_id] = interview
        return interview

    def find_interview(self, interview_id: Any, project_id: str) -> Interview | None:
        """The interview, if it exists and belongs to the caller's project."""
        interview = self.interviews.get(interview_id) if isinstance(interview_id, str) else None
        return interview if interview is not None and interview.project_id == project_id else None

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Pop one use of the first queued fault matching this request."""
        for fault in self.faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def reset(self) -> None:
        self.interviews.clear()
        self.limiter.reset()
        self.requests.clear()
        self.faults.clear()
        if self.state_file is not None:
            with self._locked():
                self._write()

    # -- the optional state file -------------------------------------------------------------

    def sync(self, *, write: bool = False) -> None:
        """Merge the state file's interviews in (if it changed); with ``write``, save the merge."""
        if self.state_file is None:
            return
        with self._locked():
            if self._stamp() != self._seen:
                self._merge(self._read())
            if write:
                self._write()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.state_file.stat()  # type: ignore[union-attr]
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> list[dict[str, Any]]:
        assert self.state_file is not None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (ValueError, OSError) as exc:
            raise RuntimeError(f"the sandbox state file {self.state_file} cannot be read ({exc}); "
                               "delete it to start the sandbox afresh") from None
        return list(data.get("interviews", [])) if isinstance(data, dict) else []

    def _merge(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            theirs = Interview.from_record(record)
            ours = self.interviews.get(theirs.interview_id)
            if ours is None or (theirs.updated_at, len(theirs.transcript)) > (ours.updated_at, len(ours.transcript)):
                self.interviews[theirs.interview_id] = theirs
        self._seen = self._stamp()

    def _write(self) -> None:
        assert self.state_file is not None
        body = json.dumps({"version": 1, "interviews": [i.to_record() for i in self.interviews.values()]})
        # mkstemp: a fresh name opened with O_EXCL and mode 0600 (session tokens), never a planted link
        fd, tmp = tempfile.mkstemp(prefix=self.state_file.name + ".", suffix=".tmp", dir=self.state_file.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.replace(tmp, self.state_file)
        self._seen = self._stamp()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.state_file is not None
        self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.state_file.with_name(self.state_file.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
