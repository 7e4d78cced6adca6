"""A local, deterministic emulator of Koji's headless interview API (like stripe-mock).

Same paths, headers, bodies, status codes and error bodies as Koji documents; imports
nothing from the rest of koji_mcp. Quick start::

    with SandboxServer() as sandbox:          # real uvicorn on a free port, background thread
        httpx.post(sandbox.base_url + "/api/v1/interviews/start",
                   headers={"Authorization": f"Bearer {DEMO_KEY}"})

Where Koji's documentation is silent, the sandbox invents the following (clients must
not rely on these details against the real API):

* **Send message, SSE** (``Accept: text/event-stream``)::

      event: delta
      data: {"type": "delta", "content": "<2–4 chunks of the interviewer's reply>"}

      event: done
      data: {"type": "done", "message_id": "msg_…", "interviewer_message_id": "msg_…",
             "interview_status": "active"|"ended", "messages_count": N}

      data: [DONE]

  ``message_id`` is the respondent's message (as in the JSON reply's top level). Without
  that Accept header the reply is the older docs' JSON shape.
* **The question being asked, as data**: the start body, the JSON message reply and the SSE
  ``done`` event carry ``"question"``, the brief's question the interviewer's text asks, in the
  interview's locale: ``{"id", "type"}`` plus ``"options"`` (choice and ranking types) or ``"min"``,
  ``"max"`` and, when the brief gives them, ``"labels"`` (scale). Absent once the reply is the
  closing message. So a client can offer the same choices as widgets; Koji's own format is unknown.
* **Messages after a natural end**: 409 ``{"error": "conflict", ...}``; after completion:
  401 ``invalid_session_token`` (the token expired).
* **Complete** (200, idempotent – the first body is replayed verbatim, later ``reason`` /
  ``feedback`` are ignored): ``{"interview_id", "status": "completed",
  "completion_reason", "completed_at", "analysis_status": "pending"}``. The legacy route
  accepts ``interview_id`` in the body only if it equals the URL's.
* **Get interview**: ``{"interview_id", "status": "active"|"ended"|"completed", "mode",
  "locale", "respondent": {"external_id", "display_name", "metadata"} (null if not
  given), "created_at", "updated_at", "completed_at", "completion_reason",
  "messages_count", "transcript": [{"message_id", "role", "content", "created_at"}],
  "analysis", "feedback"}``. ``analysis`` is null before completion,
  ``{"status": "pending"}`` for ``analysis_delay`` seconds after it, then
  ``{"status": "ready", "summary", "themes": [{"name", "mentions"}], "quality_score"
  (1–5), "structured_answers": [...], "statistics": {"respondent_messages",
  "respondent_words", "duration_seconds"}}``. Timestamps: ISO 8601 UTC, ``…Z``.
* **Errors**: unknown interview (or another project's) → 404 ``not_found``; handler
  crash → 500 ``internal_error``; 401s carry rate-limit headers of an idle window.
* **Rate limit**: ``X-RateLimit-Reset`` is the (ceiled) Unix time at which the oldest
  counted request leaves the sliding window; ``Retry-After`` only if configured.

Control endpoints (sandbox only; no auth, no rate limit, not in the request log):

* ``GET /_sandbox/requests`` → ``{"requests": [{"method", "path", "headers" (lowercased),
  "json" (parsed body or null), "body" (raw text), "status"}]}`` for every other request,
  in arrival order (401s, 429s and missing-route 404s included); ``DELETE`` clears it.
* ``POST /_sandbox/faults`` queues ``{"method"?: any if omitted, "path"?: exact path or
  any, "status"?, "json"?, "body"?, "content_type"?, "headers"?, "times"?: 1, "delay"?: 0,
  "after_processing"?: false}``; the first matching fault is used. Without ``status`` a
  fault only delays the real response. ``GET`` lists, ``DELETE`` clears.
* ``GET /_sandbox/interviews`` → ``{"interviews": [GET body + "project",
  "session_token", "question_index"]}``; ``POST /_sandbox/reset`` clears everything.

Keys (``DEMO_KEY`` and friends) are fixed strings of Koji's shape; see :mod:`.config`.
"""

from .app import create_app
from .brief import default_brief, load_brief, validate_brief
from .config import (
    ALL_PERMISSIONS,
    DELETED_PROJECT_KEY,
    DEMO_KEY,
    DRAFT_PROJECT_KEY,
    NO_PERMISSION_KEY,
    READ_ONLY_KEY,
    REVOKED_KEY,
    START_ONLY_KEY,
    KeySpec,
    SandboxConfig,
)
from .runner import SandboxServer, run_sandbox
from .state import SandboxState

__all__ = [
    "ALL_PERMISSIONS",
    "DELETED_PROJECT_KEY",
    "DEMO_KEY",
    "DRAFT_PROJECT_KEY",
    "NO_PERMISSION_KEY",
    "READ_ONLY_KEY",
    "REVOKED_KEY",
    "START_ONLY_KEY",
    "KeySpec",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
    "default_brief",
    "load_brief",
    "run_sandbox",
    "validate_brief",
]
