"""The bridge's own limits per LMS connection: a concurrency cap and a request rate, shared through Redis."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from bridge.lms import build_connector
from bridge.lms.errors import LMSRateLimited
from bridge.lms.limits import LimitReached, Limits
from bridge.sandbox import COURSEBOX_EMAIL, COURSEBOX_PASSWORD


def coursebox(sandbox, redis_conn, **spec):
    return build_connector("limited", {"type": "coursebox", "url": f"{sandbox}/sandbox/coursebox",
                                       "email": COURSEBOX_EMAIL, "password": COURSEBOX_PASSWORD, **spec}, redis=redis_conn)


def course_calls(sandbox_calls) -> list[float]:
    return [datetime.fromisoformat(call["time"]).timestamp() for call in sandbox_calls() if "findCourse" in call["path"]]


def test_concurrency_cap_holds_across_connectors_sharing_redis(sandbox, sandbox_calls, redis_conn):
    requests.post(f"{sandbox}/sandbox/faults", json={"latency": 0.3}, timeout=5).raise_for_status()
    connectors = [coursebox(sandbox, redis_conn, concurrency=2) for _ in range(6)]  # as six workers would
    connectors[0].perform("get_course", {"course_id": 42})  # log in once before the burst
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda c: c.perform("get_course", {"course_id": 42}), connectors))
    starts = sorted(course_calls(sandbox_calls))[1:]
    # Each call takes at least 0.3 s, so no three of them may start within 0.3 s of each other.
    assert all(later - earlier >= 0.25 for earlier, later in zip(starts, starts[2:]))


def test_request_rate_spaces_a_burst(sandbox, sandbox_calls, redis_conn):
    connector = coursebox(sandbox, redis_conn, rate_limit={"requests": 4, "per": 1})
    started = time.monotonic()
    for _ in range(8):
        connector.perform("get_course", {"course_id": 42})
    # 8 calls plus a login at 4 per second: the first 4 at once, then one every quarter second.
    assert time.monotonic() - started >= 1.0


def test_a_limit_that_stays_full_raises_rate_limited_without_sending(sandbox, sandbox_calls, redis_conn):
    connector = coursebox(sandbox, redis_conn, rate_limit={"requests": 2, "per": 60})
    connector.perform("get_course", {"course_id": 42})  # the login and this call use the two
    with pytest.raises(LMSRateLimited) as error:
        connector.perform("get_course", {"course_id": 7})
    assert error.value.retryable and error.value.retry_after >= 25
    assert "nothing was sent" in str(error.value)
    assert not any("id=7" in str(call.get("query")) for call in sandbox_calls())


def test_in_memory_limits_without_redis():
    limits = Limits("local", concurrency=1, rate=None, max_wait=0.2)
    with limits.slot():
        with pytest.raises(LimitReached):
            with limits.slot():
                pass
    with limits.slot():
        pass
    with pytest.raises(ValueError):
        Limits("bad", concurrency=0)
