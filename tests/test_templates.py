"""Every e-mail template, checked suite-wide: three files each, one-line subjects, strict
rendering from a sample context, HTML escaped."""

from __future__ import annotations

import pytest

from proctoring import emails, statuses
from proctoring.statuses import Status

KINDS = sorted(
    p.name for p in emails.templates_dir().iterdir() if p.is_dir() and not p.name.startswith("_")
)
FILES = ("subject.txt", "body.txt", "body.html")


def sample(status: Status, **overrides: str) -> emails.Facts:
    values = {
        "username": "ada",
        "course_name": "Analytical Engines 101",
        "exam_name": "Final exam",
        "contact_url": "https://courses.example.test/contact",
    }
    values.update(overrides)
    return emails.Facts(status=status, **values)  # type: ignore[arg-type]


def test_every_kind_is_registered_and_every_registration_has_a_folder() -> None:
    assert sorted(template for template, _ in emails.EMAILS.values()) == KINDS


@pytest.mark.parametrize("kind", ["_base", *KINDS])
def test_each_folder_has_its_three_files(kind: str) -> None:
    folder = emails.templates_dir() / kind
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)


@pytest.mark.parametrize("status", list(emails.EMAILS))
def test_each_kind_renders_strictly_with_every_fact(status: Status) -> None:
    template, context_of = emails.EMAILS[status]
    rendered = emails.render(template, context_of(sample(status)))
    assert "\n" not in rendered.subject
    assert rendered.subject
    for part in (rendered.text, rendered.html):
        for fact in ("ada", "Analytical Engines 101", "Final exam", "courses.example.test/contact"):
            assert fact in part
        assert statuses.in_words(status) in part
    for file in FILES:
        source = (emails.templates_dir() / template / file).read_text()
        assert source.startswith('{% extends "_base/'), f"{template}/{file} extends its base"


def test_a_missing_fact_fails_loudly() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        emails.render("attempt-verified", {"username": "ada"})


def test_html_is_escaped_and_text_is_not() -> None:
    facts = sample(Status.verified, exam_name="<script>alert(1)</script>", course_name="R&D")
    rendered = emails.render("attempt-verified", emails.attempt_verified(facts))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "R&amp;D" in rendered.html
    assert "<script>alert(1)</script>" in rendered.text


def test_a_line_break_in_a_name_cannot_add_a_header() -> None:
    facts = sample(Status.submitted, exam_name="Final\r\nBcc: everyone@example.test")
    rendered = emails.render("attempt-submitted", emails.attempt_submitted(facts))
    message = emails.build_message(
        rendered, sender="a@example.test", recipient="b@example.test", message_id="<m@x>"
    )
    assert message["Bcc"] is None
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (Status.submitted, "will be\nreviewed"),
        (Status.verified, "all proctoring requirements were met"),
        (Status.rejected, "appeal"),
    ],
)
def test_each_kind_says_what_it_is_about(status: Status, words: str) -> None:
    template, context_of = emails.EMAILS[status]
    rendered = emails.render(template, context_of(sample(status)))
    assert words in rendered.text
