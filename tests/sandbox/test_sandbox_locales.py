"""The sandbox interviewer speaks the interview's locale from greeting to closing."""

from __future__ import annotations

import re

import pytest

from koji_mcp.sandbox import DEMO_KEY, default_brief
from koji_mcp.sandbox.interviewer import LANGUAGES, render_question, respond, speaks

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
ENGLISH = re.compile(r"\b(the|you|your|please|thanks|choose|answer|apply|rank|what|which|how|yes)\b", re.I)


def conversation(http, start, locale: str, replies: list[str]) -> tuple[list[str], dict]:
    started = start({"locale": locale, "respondent": {"display_name": "Ana Lima"}})
    iid, token = started["interview_id"], started["session_token"]
    said = [started["initial_message"]]
    for reply in replies:
        r = http.post(f"/api/v1/interviews/{iid}/message", json={"content": reply},
                      headers={**AUTH, "X-Session-Token": token})
        assert r.status_code == 200, r.text
        said.append(r.json()["interviewer_response"]["content"])
    return said, {"iid": iid, "token": token}


@pytest.mark.parametrize("locale", ["es", "fr", "de", "pt-BR"])
def test_every_interviewer_message_is_in_the_locale(http, start, locale: str) -> None:
    said, _ = conversation(http, start, locale, ["ok"] * 6)
    assert len(said) == 7
    brief = default_brief()
    assert said[0].startswith(brief["greetings"][locale].replace("{name}", "Ana").split("!")[0])
    assert said[-1] == brief["closings"][locale]
    for message in said:
        assert not ENGLISH.search(message), message  # no English question, hint or acknowledgement slipped in
    for i, q in enumerate(brief["questions"]):
        assert q["translations"][locale]["text"] in said[i]


def test_spanish_interview_word_for_word(http, start) -> None:
    said, _ = conversation(http, start, "es", ["Bien", "8", "Documentación", "Informes y Alertas", "x", "Sí"])
    assert said[0] == ("¡Hola Ana! Gracias por dedicarnos tu tiempo hoy para hablar de tus primeras semanas con el "
                       "producto. Son unos cinco minutos. Para empezar, ¿cómo fue tu primera semana con el producto? "
                       "¿Qué te llamó la atención, para bien o para mal?")
    assert said[1] == "Gracias por contarlo. ¿Qué tan fácil fue configurarlo? Responde con un número del 1 al 10."
    assert said[2] == ("Entendido, gracias. ¿Qué recurso te ayudó más al empezar? Opciones: Documentación, Tutoriales "
                       "en video, Atención al cliente o Foro de la comunidad.")
    assert said[5] == "Gracias por contarlo. ¿Recomendarías el producto a un colega? (Sí o no.)"


def test_analysis_of_a_translated_interview_reports_the_briefs_options(http, start) -> None:
    _, ids = conversation(http, start, "es", ["Bien", "8", "La documentación, sin duda", "Informes y Alertas",
                                              "Precio más bajo, luego Mayor rendimiento", "Sí"])
    r = http.post("/api/interview/complete", json={"interview_id": ids["iid"]},
                  headers={**AUTH, "X-Session-Token": ids["token"]})
    assert r.status_code == 200
    import time

    time.sleep(0.3)
    got = http.get(f"/api/v1/interviews/{ids['iid']}", headers=AUTH).json()
    answers = {a["questionId"]: (a["structuredValue"], a["questionText"]) for a in got["analysis"]["structured_answers"]}
    assert answers["q2"] == (8, "¿Qué tan fácil fue configurarlo?")
    assert answers["q3"][0] == "Documentation"
    assert answers["q4"][0] == ["Reports", "Alerts"]
    assert answers["q5"][0] == ["Lower price", "Faster performance"]
    assert answers["q6"][0] is True


def test_locales_without_the_interviewers_own_words_fall_back_to_english() -> None:
    assert LANGUAGES == ("en", "es", "fr", "de", "pt-BR")
    assert speaks("pt-br") and speaks("es-MX") and not speaks("it")
    brief = {"questions": [{"id": "a", "type": "yes_no", "text": "Ti piace?"}, {"id": "b", "type": "open_ended",
                                                                                 "text": "Perché?"}],
             "closing": "Ciao."}
    assert render_question(brief["questions"][0], "it") == "Ti piace? (Yes or no.)"
    assert respond(brief, 0, "it") == ("Thanks for sharing that. Perché?", False)


@pytest.mark.parametrize(("translations", "message"), [
    ({"it": {"text": "x"}}, "'questions[0].translations' has locale 'it', which is not listed in 'locales'"),
    ({"es": {"text": ""}}, "'questions[0].translations.es.text' must be a non-empty string"),
    ({"es": {"text": "¿Cuál?", "options": ["A"]}}, "'questions[0].translations.es.options' must list as many"),
])
def test_bad_translations_are_named(translations, message) -> None:
    from koji_mcp.sandbox import validate_brief

    brief = {"title": "T", "locales": ["en", "es"], "questions": [
        {"id": "q", "type": "single_choice", "text": "Which?", "options": ["A", "B"], "translations": translations}]}
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_brief(brief)
