"""Reading a participants CSV into validated respondents, all errors found before anything is sent.

Columns: `external_id`, `display_name`; every other column becomes respondent metadata, typed
where unambiguous (true/false -> boolean, plain decimal numbers -> number; values with leading
zeros such as zip codes stay strings). Empty cells are left out.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from koji_mcp.koji.models import MAX_METADATA_KEYS, Respondent
from koji_mcp.text import plural

MAX_ROWS = 5_000
MAX_BYTES = 10 * 1024 * 1024
MAX_ERRORS = 20
KNOWN = ("external_id", "display_name")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")


class ParticipantsError(ValueError):
    """The file cannot be used; the message lists every problem found (row and column)."""


@dataclass
class Participants:
    respondents: list[Respondent]
    missing_external_ids: int


def typed(value: str) -> Any:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _NUMBER.fullmatch(value.strip()):
        return float(value) if "." in value else int(value)  # int() keeps big ids exact
    return value


def read_participants(path: str | Path, *, max_rows: int = MAX_ROWS) -> Participants:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ParticipantsError(f"{path}: no such file") from None
    except OSError as exc:
        raise ParticipantsError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise ParticipantsError(f"{path}: {len(raw):,} bytes; the limit is {MAX_BYTES:,} bytes — split the file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParticipantsError(
            f"{path}: not UTF-8 (invalid byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8 CSV"
        ) from None
    return parse_participants(text, source=str(path), max_rows=max_rows)


def parse_participants(text: str, *, source: str = "input", max_rows: int = MAX_ROWS) -> Participants:
    if not text.strip():
        raise ParticipantsError(f"{source}: the file is empty; expected a header row with external_id, display_name")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # A cell may be as long as the file (Python's default cap is 131,072 characters): long values are then
    # reported by the field checks below, with their line and column, instead of failing inside csv.
    previous_limit = csv.field_size_limit(MAX_BYTES)
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        return _parse_rows(reader, source, max_rows)
    except csv.Error as exc:
        raise ParticipantsError(f"{source}: line {reader.line_num}: not valid CSV ({exc}); nothing was sent") from None
    finally:
        csv.field_size_limit(previous_limit)


def _parse_rows(reader: Any, source: str, max_rows: int) -> Participants:
    header = [h.strip() for h in next(reader)]
    _check_header(header, source)
    errors: list[str] = []
    respondents: list[Respondent] = []
    missing_ids = 0
    row_number = 0  # participant rows as the results CSV numbers them (header and blank lines not counted)
    for cells in reader:
        number = reader.line_num  # the file line where this row ends (what an editor shows)
        if not any(c.strip() for c in cells):
            continue
        row_number += 1
        where = f"row {row_number} (line {number})"
        if len(respondents) >= max_rows:
            raise ParticipantsError(f"{source}: more than {max_rows:,} participants; split the file")
        if len(cells) != len(header):
            errors.append(f"{where}: {plural(len(cells), 'cell')} but the header has {plural(len(header), 'column')}")
            continue
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        metadata = {k: typed(v) for k, v in row.items() if k not in KNOWN and v != ""}
        fields = {k: row[k] for k in KNOWN if row.get(k)}
        try:
            respondents.append(Respondent(**fields, metadata=metadata or None))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                column = str(err["loc"][0]) if err["loc"] else "row"
                errors.append(f"{where}, column {column}: {str(err['msg']).removeprefix('Value error, ')}")
        if not row.get("external_id"):
            missing_ids += 1
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        more = " (stopped after 20 errors)" if len(errors) >= MAX_ERRORS else ""
        raise ParticipantsError(f"{source}: {len(errors)} problem(s){more}; nothing was sent:\n"
                                + "\n".join(f"  {e}" for e in errors))
    if not respondents:
        raise ParticipantsError(f"{source}: the header is there but no participant rows follow")
    return Participants(respondents, missing_ids)


def _check_header(header: list[str], source: str) -> None:
    if not any(h in KNOWN for h in header):
        raise ParticipantsError(
            f"{source}: the header row must have an external_id and/or display_name column; found: "
            + (", ".join(repr(h) for h in header) or "nothing")
        )
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise ParticipantsError(f"{source}: header column(s) {empty} have no name")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise ParticipantsError(f"{source}: duplicate header column(s): {', '.join(duplicates)}")
    if len([h for h in header if h not in KNOWN]) > MAX_METADATA_KEYS:
        raise ParticipantsError(f"{source}: more than {MAX_METADATA_KEYS} metadata columns")
