"""The documentation travels with the code: every link resolves, and every status, source,
route, command and task name the code has is described in docs/.

A reader who clones the repository has nothing else; a rename in the code that the docs do not
follow fails here rather than misleading them.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from cli.main import build_parser
from config import get_settings
from proctoring.db import UnitOfWork
from proctoring.statuses import Source, Status
from workers import routing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TEXTS = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# Folders that are not the project's own text: tools' caches, the environment, local state.
SKIPPED_DIRS = {".git", ".venv", "venv", "var", "build", "dist", "node_modules", "__pycache__"}
# Spelled in two parts so that this file does not match itself.
OUTSIDE_REFERENCES = ("../" + "shared", "shared/" + "SPEC")

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(path: Path) -> str:
    """The text without fenced code blocks, where `#` starts a comment, not a heading."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(path)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(INLINE_CODE.sub("", prose(path)))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("text", TEXTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(text: Path) -> None:
    broken = []
    for target in relative_links(text):
        file_part, _, anchor = target.partition("#")
        destination = (text.parent / file_part).resolve() if file_part else text
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{text.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_index_lists_every_page_of_docs() -> None:
    linked = {target.partition("#")[0] for target in relative_links(DOCS / "README.md")}
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and p.name not in linked]
    assert not missing, f"docs/README.md does not link {missing}"


def test_the_readme_leads_to_the_index() -> None:
    assert "docs/README.md" in relative_links(ROOT / "README.md")


def project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(
            part in SKIPPED_DIRS or part.endswith(".egg-info") or part.endswith("_cache")
            for part in parts
        ):
            continue
        if path.is_file():
            files.append(path)
    return files


def test_nothing_sends_readers_outside_the_repository() -> None:
    offenders = []
    for path in project_files():
        content = path.read_bytes()
        if b"\0" in content:
            continue
        text = content.decode("utf-8", errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)} mentions {ref}" for ref in OUTSIDE_REFERENCES if ref in text
        ]
    assert not offenders, offenders


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def test_every_status_is_in_the_status_table() -> None:
    behaviour = (DOCS / "behaviour.md").read_text(encoding="utf-8")
    table = behaviour.split("## Statuses", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert rows == {s.value for s in Status}


def test_every_source_is_in_who_may_set_what() -> None:
    behaviour = (DOCS / "behaviour.md").read_text(encoding="utf-8")
    table = behaviour.split("## Who may set what", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    assert rows == {s.value for s in Source}


def _unbound() -> Any:
    raise AssertionError("listing the routes does not touch the database")


def test_every_route_is_in_the_routes_table() -> None:
    app = create_app(get_settings(), uow=UnitOfWork(_unbound))
    http = (DOCS / "http.md").read_text(encoding="utf-8")
    table = http.split("## Routes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z]+ \S+)` \|", table, re.MULTILINE))
    # The OpenAPI document lists every route of the contract; routes left out of it on purpose
    # (the metrics) are the app's own.
    served = {
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    served |= {
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served


def test_every_command_is_in_operations() -> None:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    missing = [name for name in subparsers.choices if f"`proctorq {name}" not in operations]
    assert not missing, f"docs/operations.md does not describe {missing}"


def test_every_task_name_is_in_the_docs() -> None:
    text = docs_text()
    task_names = [v for k, v in vars(routing).items() if k.isupper() and isinstance(v, str)]
    missing = [name for name in task_names if name not in text]
    assert task_names and not missing, f"docs/ never names {missing}"
