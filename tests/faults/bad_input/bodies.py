"""Bad credentials on every user route, and bad bodies on every route that takes one."""

from __future__ import annotations

from collections.abc import Iterator

from config import get_settings
from tests.faults.bad_input.probes import JSON, Corpus, Route, bad_credentials


def add_credentials(c: Corpus, all_routes: dict[str, Route]) -> None:
    user_routes = {name: r for name, r in all_routes.items() if r.caller is not None}

    # 1. Credentials: every user route, with each bad Authorization header.
    for name, route in user_routes.items():
        for label, headers in bad_credentials(route.caller or 0):
            raw = route.raw()
            content_headers = JSON if route.body is not None else {}
            c.add(
                f"{name}: {label}",
                route.method,
                route.path,
                401,
                {**headers, **content_headers},
                raw,
            )


def add_bodies(c: Corpus, all_routes: dict[str, Route]) -> None:
    limit = get_settings().max_body_bytes

    # 2. Bodies: each field wrong, each required field missing, extra fields, and bodies that
    # are not JSON objects at all, not UTF-8, too deep or too big.
    for name, route in all_routes.items():
        if route.body is None:
            continue
        for field_name, values in route.wrong.items():
            for value in values:
                c.body(
                    route, f"{name}: {field_name}={value!r:.40}", {**route.body, field_name: value}
                )
        for field_name in route.required:
            body = {k: v for k, v in route.body.items() if k != field_name}
            c.body(route, f"{name}: no {field_name}", body)
        if route.strict:
            c.body(route, f"{name}: an extra field", {**route.body, "is_admin": True})
        for label, raw, expect in [
            ("not JSON", b"{not json", 422),
            ("truncated JSON", route.raw()[:-3], 422),
            ("empty body", b"", 422),
            ("null", b"null", 422),
            ("a list", b"[]", 422),
            ("a number", b"12", 422),
            ("a string", b'"body"', 422),
            ("not UTF-8", route.raw().replace(b'"', b'"\xff', 1), {400, 401}),
            ("latin-1", '{"x": "é"}'.encode("latin-1"), {400, 401}),
            ("nested too deep", b"[" * 100_000 + b"]" * 100_000, {400, 413, 422}),
            ("unclosed nesting", b'{"a": ' + b"[" * 50_000, {400, 422}),
            ("a huge number", b'{"x": 1' + b"0" * 5000 + b"}", {400, 422}),
            ("NaN", b'{"x": NaN}', 422),
            ("duplicate key", b'{"to_status": "started", "to_status": 5}', 422),
        ]:
            c.raw(route, f"{name}: {label}", raw, expect)
        c.raw(route, f"{name}: text/plain", route.raw(), 422, **{"content-type": "text/plain"})
        c.raw(
            route,
            f"{name}: form",
            b"a=1&b=2",
            422,
            **{"content-type": "application/x-www-form-urlencoded"},
        )
        if route.caller is not None:
            c.raw(route, f"{name}: no content type", route.raw(), 422, **{"content-type": ""})
    for name, route in all_routes.items():
        if route.method == "GET":
            continue
        padded = route.raw() + b" " * (limit + 1 - len(route.raw()))
        c.raw(route, f"{name}: body over the limit", padded, 413)

        def stream(size: int = limit + 1) -> Iterator[bytes]:
            for _ in range(size // 65536 + 1):
                yield b" " * 65536

        c.add(
            f"{name}: streamed over the limit",
            route.method,
            route.path,
            413,
            route.headers(),
            stream,
        )
