"""Participants CSV: typing, and errors that name the line and column before anything is sent."""

from __future__ import annotations

import pytest

from koji_mcp.cli.participants import (
    ParticipantsError,
    parse_participants,
    read_participants,
    typed,
)


def test_columns_and_typing() -> None:
    parsed = parse_participants(
        "external_id,display_name,plan,seats,ratio,trial,zip,note\n"
        "u1,Ann,pro,12,0.5,TRUE,02134,\n"
        "u2,,free,-3,10.25,false,90210,hello world\n"
    )
    first, second = parsed.respondents
    assert first.model_dump(exclude_none=True) == {
        "external_id": "u1", "display_name": "Ann",
        "metadata": {"plan": "pro", "seats": 12, "ratio": 0.5, "trial": True, "zip": "02134"}}
    assert second.model_dump(exclude_none=True) == {
        "external_id": "u2",
        "metadata": {"plan": "free", "seats": -3, "ratio": 10.25, "trial": False, "zip": 90210, "note": "hello world"}}
    assert parsed.missing_external_ids == 0


def test_semicolon_files_and_bom_and_blank_lines(tmp_path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffexternal_id;display_name\n\nu1;Zoë\n".encode())
    parsed = read_participants(path)
    assert [(r.external_id, r.display_name) for r in parsed.respondents] == [("u1", "Zoë")]


def test_rows_without_external_id_are_counted() -> None:
    assert parse_participants("display_name\nAnn\nBob\n").missing_external_ids == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("   \n", "the file is empty"),
        ("name,email\nAnn,a@b\n", "the header row must have an external_id and/or display_name column; found: 'name', 'email'"),
        ("external_id,,x\na,b,c\n", "header column(s) [2] have no name"),
        ("external_id,x,x\na,b,c\n", "duplicate header column(s): x"),
        ("external_id,display_name\n", "no participant rows follow"),
        ("external_id,x\na,1\nb\n", "row 2 (line 3): 1 cell but the header has 2 columns"),
        ("external_id,display_name\n" + "a" * 201 + ",Ann\n", "row 1 (line 2), column external_id: String should have at most 200 characters"),
    ],
)
def test_errors_name_the_problem(text, message) -> None:
    with pytest.raises(ParticipantsError) as info:
        parse_participants(text, source="p.csv")
    assert message in str(info.value)


def test_all_errors_are_listed_before_anything_is_sent() -> None:
    text = "external_id,x\n" + "".join(f"{'a' * 201 if i % 2 else 'ok'},{i}\n" for i in range(6))
    with pytest.raises(ParticipantsError) as info:
        parse_participants(text, source="p.csv")
    assert str(info.value).startswith("p.csv: 3 problem(s); nothing was sent:")
    assert [line.split(",")[0].strip() for line in str(info.value).splitlines()[1:]] == ["row 2 (line 3)", "row 4 (line 5)", "row 6 (line 7)"]


def test_errors_number_rows_like_the_results_csv_and_give_the_file_line() -> None:
    """Blank lines and multi-line cells are not rows: row N is the Nth participant, as in FILE.results.csv."""
    text = 'external_id,display_name\n\nok,"Ann\nSmith"\n' + "a" * 201 + ",Bob\n"
    with pytest.raises(ParticipantsError) as info:
        parse_participants(text, source="p.csv")
    assert str(info.value).splitlines()[1] == "  row 2 (line 5), column external_id: String should have at most 200 characters"


def test_file_level_errors(tmp_path) -> None:
    with pytest.raises(ParticipantsError, match="no such file"):
        read_participants(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"external_id,display_name\nu1,Jos\xe9\n")
    with pytest.raises(ParticipantsError, match=r"not UTF-8 \(invalid byte 0xe9 on line 2\)"):
        read_participants(latin)
    with pytest.raises(ParticipantsError, match="more than 2 participants"):
        parse_participants("external_id\na\nb\nc\n", max_rows=2)


def test_big_csv_numbers_stay_exact() -> None:
    assert typed("12345678901234567890") == 12345678901234567890
    assert typed("9007199254740993") == 9007199254740993
