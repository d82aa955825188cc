"""Record every LMS request and reply a job makes, with secrets taken out, in its delivery's history."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

from .deliveries import ATTEMPTS_KEY
from .redaction import REDACTED, is_secret_name, redact, scrub

BODY_CAP = 4096


def _decoded(body, content_type: str):
    if body in (None, b"", ""):
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            pass
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(text, keep_blank_values=True))
    return text[:BODY_CAP]


def describe(response, secrets: list[str], elapsed: float) -> dict:
    """Describe one HTTP exchange of a connector: method, URL, request and reply, redacted."""
    request = response.request
    url = urlsplit(request.url)
    query = {key: (REDACTED if is_secret_name(key) else value) for key, value in parse_qsl(url.query)}
    sent = _decoded(request.body, request.headers.get("Content-Type", ""))
    reply = _decoded(response.content[:BODY_CAP * 4], response.headers.get("Content-Type", ""))
    if isinstance(sent, dict) and "password" in {str(key).lower() for key in sent} and 200 <= response.status_code < 300:
        # A login (a password sent) is answered with a token in whatever shape the LMS chose; none of it is kept.
        reply = REDACTED
    return {
        "at": time.time(),
        "method": request.method,
        "url": scrub(f"{url.scheme}://{url.netloc}{url.path}", secrets),
        "query": redact(query, secrets),
        "request": redact(sent, secrets),
        "status": response.status_code,
        "reply": redact(reply, secrets),
        "seconds": round(elapsed, 3),
    }


def recorder(connector, store_ttl: int):
    """Return a requests response hook that adds each exchange to the running job's delivery history."""

    def hook(response, *args, **kwargs):
        from rq import get_current_job

        from .ledger import current

        job = get_current_job()
        delivery = job.meta.get("delivery_id") if job else None
        if not delivery:
            return response
        entry = describe(response, connector.secrets(), response.elapsed.total_seconds())
        entry.update(job=job.id, connection=connector.name)
        key, line = ATTEMPTS_KEY.format(delivery), json.dumps(entry, default=str)

        def write(pipe):
            pipe.rpush(key, line)
            pipe.expire(key, store_ttl)

        ledger = current()
        if ledger is not None:
            ledger.add(write)  # sent with the step's checkpoint, or the job's end
        else:
            with job.connection.pipeline(transaction=False) as pipe:
                write(pipe)
                pipe.execute()
        return response

    return hook
