"""Replays of an Idempotency-Key, and the vendors' routes: providers, signatures, timestamps,
other vendors' attempts, replays of a webhook id."""

from __future__ import annotations

import json
import time

from tests.faults.bad_input.probes import JSON, Corpus, Route, webhook
from tests.faults.bad_input.world import Setup
from tests.support.environment import webhook_secret
from tests.support.tokens import bearer


def add_idempotency_keys(c: Corpus, s: Setup) -> None:
    learner = bearer(s.world.learner)
    attempt = s.attempt["attempt_id"]

    # 5. Idempotency-Key: the same key again (the first answer), with another request (409),
    # and keys that are not keys.
    url = f"/v1/attempts/{attempt}/transitions"
    keyed = {**learner, **JSON, "Idempotency-Key": s.key}
    c.add(
        "the same key, the same request",
        "POST",
        url,
        200,
        keyed,
        b'{"to_status": "started"}',
        first=(200, s.transition[1]),
    )
    c.add(
        "the same key, again",
        "POST",
        url,
        200,
        keyed,
        b'{"to_status":"started"}',
        first=(200, s.transition[1]),
    )
    c.add("the same key, another status", "POST", url, 409, keyed, b'{"to_status": "submitted"}')
    c.add(
        "the same key, another attempt",
        "POST",
        f"/v1/attempts/{s.second['attempt_id']}/transitions",
        409,
        keyed,
        b'{"to_status": "started"}',
    )
    c.add("the same key, declined instead", "POST", url, 409, keyed, b'{"to_status": "declined"}')
    for label, key in [
        ("empty key", ""),
        ("key too long", "k" * 201),
        ("key with a space", "a key"),
        ("key with a tab", "a\tkey"),
        ("key not ASCII", "clé".encode()),
    ]:
        c.add(
            f"Idempotency-Key: {label}",
            "POST",
            url,
            422,
            {**learner, **JSON, "Idempotency-Key": key},
            b'{"to_status": "ready_to_submit"}',
        )


def add_vendors(c: Corpus, s: Setup, all_routes: dict[str, Route]) -> None:
    admin = bearer(s.admin, staff=True)
    vendor_routes = {name: r for name, r in all_routes.items() if r.caller is None}

    # 6. Vendors: providers, signatures, timestamps, other vendors' attempts, replays.
    review = all_routes["post review"]
    ready = all_routes["vendor ready"]
    now = time.time()
    for name, route in vendor_routes.items():
        raw = route.raw()
        path, provider_path = route.path, route.path.replace("/acme/", "/{}/")
        for label, provider in [
            ("unknown provider", "nobody"),
            ("provider in capitals", "ACME"),
            ("NUL in provider", "ac%00me"),
            ("too long provider", "p" * 300),
        ]:
            c.add(
                f"{name}: {label}",
                "POST",
                provider_path.format(provider),
                404,
                webhook("acme", raw),
                raw,
            )
        signed = webhook("acme", raw)
        for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            headers = {k: v for k, v in signed.items() if k != missing}
            c.add(f"{name}: no {missing}", "POST", path, 401, headers, raw)
        for label, headers in [
            ("another vendor's secret", webhook("acme", raw, secret=webhook_secret("cleanview"))),
            ("a made-up secret", webhook("acme", raw, secret=webhook_secret("mallory"))),
            ("an old timestamp", webhook("acme", raw, at=now - 600)),
            ("a future timestamp", webhook("acme", raw, at=now + 600)),
            ("signed over another body", webhook("acme", raw + b" ")),
            ("a timestamp that is not a number", {**signed, "webhook-timestamp": "soon"}),
            ("an empty signature", {**signed, "webhook-signature": ""}),
            ("a garbage signature", {**signed, "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"}),
            ("signature not base64", {**signed, "webhook-signature": "v1,***"}),
            (
                "signature of another version",
                {**signed, "webhook-signature": "v2" + signed["webhook-signature"][2:]},
            ),
            (
                "signature without a version",
                {**signed, "webhook-signature": signed["webhook-signature"][3:]},
            ),
            ("a long webhook-id", webhook("acme", raw, webhook_id="m" * 256)),
            ("NUL in webhook-id", webhook("acme", raw, webhook_id="msg\x00id")),
            ("a bearer token instead", {**admin, **JSON}),
        ]:
            c.add(f"{name}: {label}", "POST", path, 401, headers, raw)
        c.add(
            f"{name}: not UTF-8, signed",
            "POST",
            path,
            {400, 401},
            webhook("acme", b"\xff\xfe"),
            b"\xff\xfe",
        )
    for label, target, expect in [
        ("unknown external_id", "fx-nothing", 404),
        ("another vendor's attempt", s.cleanview["external_id"], 404),
        ("NUL in external_id", "fx%00x", 422),
        ("too long external_id", "e" * 256, 422),
    ]:
        url = f"/v1/providers/acme/attempts/{target}/ready"
        c.add(f"vendor ready: {label}", "POST", url, expect, webhook("acme", b""), b"")
    url = f"/v1/providers/cleanview/attempts/{s.vendor['external_id']}/ready"
    c.add(
        "vendor ready: cleanview for acme's attempt",
        "POST",
        url,
        404,
        webhook("cleanview", b""),
        b"",
    )
    for label, payload, provider, expect in [
        ("unknown attempt_code", {"attempt_code": "nothing", "status": "passed"}, "acme", 404),
        ("unknown external_id", {"external_id": "nothing", "status": "passed"}, "acme", 404),
        (
            "another vendor's attempt",
            {"attempt_code": s.cleanview["attempt_code"], "status": "passed"},
            "acme",
            404,
        ),
        (
            "acme's attempt, as cleanview",
            {"attempt_code": s.vendor2["attempt_code"], "status": "Clean"},
            "cleanview",
            404,
        ),
        (
            "cleanview's word for acme",
            {"attempt_code": s.vendor2["attempt_code"], "status": "Clean"},
            "acme",
            422,
        ),
        (
            "acme's word for cleanview",
            {"external_id": s.cleanview["external_id"], "status": "passed"},
            "cleanview",
            422,
        ),
        ("no attempt named", {"status": "passed"}, "acme", 422),
        ("both null", {"attempt_code": None, "external_id": None, "status": "passed"}, "acme", 422),
        (
            "extra fields, unknown attempt",
            {"attempt_code": "nothing", "status": "passed", "x": 1},
            "acme",
            404,
        ),
    ]:
        raw = json.dumps(payload).encode()
        c.add(
            f"post review: {label}",
            "POST",
            f"/v1/providers/{provider}/reviews",
            expect,
            webhook(provider, raw),
            raw,
        )
    replayed = webhook("acme", s.review_raw, webhook_id=s.review_id)
    c.add(
        "review: the same webhook, again",
        "POST",
        review.path,
        202,
        replayed,
        s.review_raw,
        first=s.review,
    )
    for label, payload in [
        ("another status", {"attempt_code": s.vendor["attempt_code"], "status": "violation"}),
        ("another attempt", {"attempt_code": s.vendor2["attempt_code"], "status": "passed"}),
        ("a body that is not valid", {"status": 5}),
    ]:
        raw = json.dumps(payload).encode()
        headers = webhook("acme", raw, webhook_id=s.review_id)
        c.add(
            f"review: the same webhook-id, {label}",
            "POST",
            review.path,
            {202, 422},
            headers,
            raw,
            first=s.review,
        )
    stale = webhook("acme", s.review_raw, webhook_id=s.review_id, at=now - 3600)
    c.add("review: the same webhook, an hour late", "POST", review.path, 401, stale, s.review_raw)
    ready_url = f"/v1/providers/acme/attempts/{s.vendor['external_id']}/ready"
    c.add(
        "ready: the same webhook, again",
        "POST",
        ready_url,
        202,
        webhook("acme", b"", webhook_id=s.ready_id),
        b"",
        first=s.ready,
    )
    c.add(
        "ready: the same webhook-id, another attempt (one id, one message: the first answer)",
        "POST",
        ready.path,
        202,
        webhook("acme", b"", webhook_id=s.ready_id),
        b"",
        first=s.ready,
    )
    c.add(
        "ready: the same webhook-id, as another vendor",
        "POST",
        ready_url.replace("acme", "cleanview"),
        404,
        webhook("cleanview", b"", webhook_id=s.ready_id),
        b"",
    )
