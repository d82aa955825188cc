import random

import pytest

from bridge.retries import RetryPolicy
from bridge.settings import Settings


def test_policy_comes_from_settings_then_connection_then_rule():
    settings = Settings(retry_intervals=(10, 30, 120), retry_max_age=0)
    assert RetryPolicy.of(settings) == RetryPolicy(3, (10, 30, 120), None)
    assert RetryPolicy.of(settings, {"attempts": 5}) == RetryPolicy(5, (10, 30, 120), None)
    assert RetryPolicy.of(settings, {"attempts": 5}, {"intervals": [1, 2], "max_age": 60}) == RetryPolicy(2, (1, 2), 60)
    assert RetryPolicy.of(settings, None, {"attempts": 0}).rq_retry() is None


def test_delay_backs_off_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(4, (10, 100))
    rng = random.Random(7)
    first = [policy.delay(0, rng=rng) for _ in range(200)]
    assert 8 <= min(first) and max(first) <= 12 and len(set(first)) > 1
    assert all(80 <= policy.delay(3, rng=rng) <= 120 for _ in range(50))  # the last interval repeats
    assert policy.delay(0, retry_after=45, rng=rng) == 45
    assert RetryPolicy(1, (0,)).delay(0) == 0


@pytest.mark.parametrize("kwargs", [{"attempts": -1, "intervals": (1,)}, {"attempts": 2, "intervals": ()}, {"attempts": 1, "intervals": (1,), "jitter": 1.5}])
def test_bad_policies_say_what_they_got(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
