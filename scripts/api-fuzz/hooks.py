"""Schemathesis hooks for Lockplane's API fuzz run (scripts/live-checks.sh).

A generated acquire may ask to wait up to 300 s on a key an earlier generated acquire
holds for a day; that is allowed and would hold the run for minutes. Waits are capped at
one second so the run stays short; every other field is left as generated.
"""

import schemathesis

MAX_WAIT_MS = 1000


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict):
        wait = body.get("wait_ms")
        if isinstance(wait, int) and not isinstance(wait, bool) and wait > MAX_WAIT_MS:
            body["wait_ms"] = MAX_WAIT_MS
    return body
