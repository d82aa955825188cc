"""Coursebox tokens and the identity map: shared through Redis, one login per connection, never a stampede."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.lms import LMSAuthError
from bridge.lms.errors import LMSLoginHeld
from bridge.lms.store import MemoryStore, RedisStore, locked
from bridge.lms.tokens import SharedToken
from bridge.sandbox import COURSEBOX_EMAIL
from tests.lms_helpers import (  # noqa: F401
    connectors,
    coursebox,
    live_sandbox,
    lms_sandbox,
    redis14,
    redis_name,
)
from tests.lms_helpers import coursebox_spec as spec

NAME = "coursebox"


@pytest.fixture
def shared(lms_sandbox, connectors, redis14, redis_name):
    """Return a function that builds a connector on Redis db 14, as each RQ work horse would."""
    return lambda **overrides: connectors(redis_name, {**spec(lms_sandbox.coursebox_url), **overrides}, redis=redis14)


@pytest.fixture
def short_tokens(live_sandbox, lms_sandbox, monkeypatch):
    """Make the sandbox hand out tokens that live one second."""
    monkeypatch.setattr(live_sandbox.state, "token_ttl", 1.0)
    return lms_sandbox


def logins(sandbox) -> int:
    return len(sandbox.calls("/auth/login"))


def test_identity_map_and_token_live_in_redis_for_every_work_horse(shared, lms_sandbox, redis14):
    created = shared().perform("create_user", {"email": "ann@example.com", "password": "chosen-Pa55"})
    again = shared().perform("create_user", {"email": "ann@example.com"})
    enrolled = shared().perform("enroll", {"course_id": "42", "email": "Ann@Example.com"})

    assert again["created"] is False and again["id"] == created["id"] == enrolled["user_id"]
    assert created["password_generated"] is False
    connector = shared()
    assert redis14.hget(connector.identities.key, "ann@example.com").decode() == created["id"]
    assert logins(lms_sandbox) == 1 and len(lms_sandbox.calls("createAccount")) == 1
    assert 0 < redis14.ttl(connector.token.key) <= 3600


def test_store_keys_change_with_the_url_and_the_login(shared, redis_name):
    one, other_site, other_login = shared(), shared(url="http://elsewhere.test"), shared(email="b@sandbox.test")

    assert one.identities.key.startswith(f"bridge:lms:{redis_name}:") and one.identities.key.endswith(":ids")
    assert one.identities.key != other_site.identities.key and one.identities.key == other_login.identities.key
    assert len({one.token.key, other_site.token.key, other_login.token.key}) == 3


def test_token_ttl_setting_sets_the_redis_expiry(shared, redis14):
    connector = shared(token_ttl=120)
    connector.perform("get_user", {"user_id": 1})

    assert 0 < redis14.ttl(connector.token.key) <= 120


def test_a_shorter_ttl_in_the_login_reply_wins(shared, short_tokens, redis14):
    connector = shared()
    connector.perform("get_user", {"user_id": 1})
    assert 0 < redis14.pttl(connector.token.key) <= 1000

    time.sleep(1.1)
    connector.perform("get_user", {"user_id": 1})
    assert logins(short_tokens) == 2
    assert [call["status"] for call in short_tokens.calls("/WineUsers/1")] == [200, 200]  # no 401 on the way


def test_the_token_is_reused_between_calls(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    coursebox.perform("get_user", {"user_id": "1"})

    assert logins(lms_sandbox) == 1
    assert len(lms_sandbox.calls("/api/WineUsers/1")) == 2


def test_a_token_expired_mid_run_means_one_new_login(coursebox, lms_sandbox):
    coursebox.perform("get_user", {"user_id": 1})
    lms_sandbox.control("DELETE", "/tokens")

    assert coursebox.perform("get_user", {"user_id": 1})["email"] == COURSEBOX_EMAIL
    coursebox.perform("list_courses", {})
    assert logins(lms_sandbox) == 2
    assert [call["status"] for call in lms_sandbox.calls("/api/WineUsers/1")] == [200, 401, 200]


def test_an_expired_token_in_redis_means_one_new_login(shared, lms_sandbox):
    shared().perform("get_user", {"user_id": 1})
    lms_sandbox.control("DELETE", "/tokens")

    shared().perform("get_user", {"user_id": 1})
    shared().perform("get_user", {"user_id": 1})
    assert logins(lms_sandbox) == 2


def run_together(count: int, work) -> list:
    """Run work(i) in `count` threads released at once; return results or exceptions."""
    results: list = [None] * count
    start = threading.Barrier(count)

    def run(index: int):
        start.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_workers_share_one_login(shared, lms_sandbox):
    workers = [shared() for _ in range(8)]
    lms_sandbox.fault(latency=0.2)  # a slow login is when a stampede would happen

    results = run_together(8, lambda index: workers[index].perform("get_user", {"user_id": 1})["id"])
    assert results == ["1"] * 8 and logins(lms_sandbox) == 1


def test_concurrent_workers_refused_the_same_token_log_in_once_again(shared, lms_sandbox):
    workers = [shared() for _ in range(6)]
    workers[0].perform("get_user", {"user_id": 1})
    lms_sandbox.control("DELETE", "/tokens")
    lms_sandbox.fault(latency=0.1)

    results = run_together(6, lambda index: workers[index].perform("get_user", {"user_id": 1})["id"])
    assert results == ["1"] * 6 and logins(lms_sandbox) == 2


def test_a_refused_login_holds_the_connection_without_another_login(shared, lms_sandbox, redis14):
    wrong, other_worker = shared(password="wrong-Secret-42"), shared(password="wrong-Secret-42")

    with pytest.raises(LMSAuthError, match="HTTP 401: login failed") as first:
        wrong.perform("get_user", {"user_id": 1})
    with pytest.raises(LMSLoginHeld, match="1 login.s. failed in a row.*login failed; next login attempt in") as second:
        other_worker.perform("get_user", {"user_id": 1})
    assert first.value.held_for == pytest.approx(2, abs=0.5) and 0 < second.value.held_for <= 2
    assert "wrong-Secret-42" not in str(first.value) + str(second.value)
    assert redis14.get(wrong.token.lock_key) is None and logins(lms_sandbox) == 1


def test_a_token_refused_twice_is_an_auth_error(coursebox, lms_sandbox):
    lms_sandbox.fault(status=401, count=2, path="/WineUsers/")

    with pytest.raises(LMSAuthError) as caught:
        coursebox.perform("get_user", {"user_id": 1})
    assert "even with a new token" in str(caught.value) and not caught.value.retryable
    assert logins(lms_sandbox) == 2


def test_concurrent_purchases_by_one_buyer_make_one_account(shared, lms_sandbox):
    workers = [shared() for _ in range(5)]
    lms_sandbox.fault(latency=0.1)

    results = run_together(5, lambda index: workers[index].perform("create_user", {"email": "max@example.com"}))
    assert sorted(result["created"] for result in results) == [False] * 4 + [True]
    assert len({result["id"] for result in results}) == 1 and len(lms_sandbox.calls("createAccount")) == 1


def test_a_waiting_worker_takes_the_token_the_lock_holder_stored():
    store, logins_made = MemoryStore(), []

    def holder_finishes(seconds):
        store.set("k", "T2", 60)
        store.release("k:lock", "holder")

    token = SharedToken(store, "k", lock_ttl=5, sleep=holder_finishes)
    store.add(token.lock_key, "holder", 5)
    assert token.get(lambda: logins_made.append(1) or ("mine", 60)) == "T2" and logins_made == []


def test_a_connector_reuses_its_token_briefly_but_never_one_the_lms_refused():
    store, reads = MemoryStore(), []
    read = store.get
    store.get = lambda key: reads.append(key) or read(key)
    token = SharedToken(store, "k", lock_ttl=5, hold=60)
    assert token.get(lambda: ("T1", 600)) == "T1"
    reads.clear()
    assert [token.get(lambda: ("never", 1)) for _ in range(3)] == ["T1"] * 3 and reads == []
    store.set("k", "T2", 600)  # another worker logged in again
    assert token.get(lambda: ("never", 1), refused="T1") == "T2" and reads == ["k"]
    assert SharedToken(store, "k", lock_ttl=5, hold=0).get(lambda: ("never", 1)) == "T2"


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_swap_stores_a_value_and_returns_the_one_it_replaced(kind, redis14, redis_name):
    store, key = (MemoryStore() if kind == "memory" else RedisStore(redis14)), f"bridge:lms:{redis_name}:swap"
    assert store.swap(key, "1", 60) is None
    assert store.swap(key, "2", 60) == "1" and store.get(key) == "2"


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_lock_reads_as_it_is_taken_and_writes_as_it_is_released_even_after_an_error(kind, redis14, redis_name):
    store = MemoryStore() if kind == "memory" else RedisStore(redis14)
    ids, lock = f"bridge:lms:{redis_name}:ids", f"bridge:lms:{redis_name}:lock"
    store.hset(ids, {"a@example.com": "7"})
    with pytest.raises(RuntimeError):
        with locked(store, lock, 5, read=("hget", ids, "a@example.com")) as held:
            assert held.read == "7" and store.add(lock, "other", 5) is False
            held.later.hset(ids, {"b@example.com": "8"})
            held.later.delete(f"{lock}:marker")
            assert store.hget(ids, "b@example.com") is None  # not before the release
            with pytest.raises(AttributeError, match="not a write"):
                held.later.hget(ids, "a@example.com")  # a read here would only ever give None
            raise RuntimeError("the body fails after learning something")
    assert store.hgetall(ids) == {"a@example.com": "7", "b@example.com": "8"} and store.get(lock) is None


def test_a_lock_left_by_a_dead_worker_expires():
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    with locked(store, "lock", 5, sleep=lambda seconds: now.__setitem__(0, now[0] + 1)):
        pass
    store.add("lock", "dead-worker", 5)

    with locked(store, "lock", 5, sleep=lambda seconds: now.__setitem__(0, now[0] + 1)):
        assert now[0] == 5.0 and store.get("lock") not in (None, "dead-worker")
    assert store.get("lock") is None


def test_lock_ttl_must_be_positive():
    with pytest.raises(ValueError, match="lock ttl must be positive, got 0"):
        with locked(MemoryStore(), "lock", 0):
            pass


def test_failed_logins_back_off_exponentially_up_to_the_cap():
    now = [1000.0]
    token = SharedToken(MemoryStore(clock=lambda: now[0]), "k", lock_ttl=5, first_backoff=2, max_backoff=10,
                        clock=lambda: now[0])
    attempts = []

    def failing_login():
        attempts.append(now[0])
        raise RuntimeError("LMS down")

    waits = []
    for _ in range(5):
        with pytest.raises(RuntimeError):
            token.get(failing_login)
        waits.append(token.backoff()["until"] - now[0])
        with pytest.raises(Exception, match="next login attempt in"):
            token.get(failing_login)  # within the wait: no login at all
        now[0] += waits[-1]
    assert waits == [2, 4, 8, 10, 10] and len(attempts) == 5
    assert token.get(lambda: ("fresh", 60)) == "fresh" and token.backoff() is None
