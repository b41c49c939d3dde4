import pytest

from coherex.retry import RetriesExhausted, Retryable, RetryPolicy, call_with_retries


class Flaky:
    def __init__(self, failures: int, retry_after: float | None = None):
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Retryable(RuntimeError("boom"), retry_after=self.retry_after)
        return "ok"


async def test_succeeds_after_retryable_failures_with_growing_waits():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(failures=2)
    policy = RetryPolicy(max_attempts=3, base_delay=1.0)
    assert await call_with_retries(flaky, policy, sleep) == "ok"
    assert flaky.calls == 3
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0  # full jitter under the exponential cap


async def test_retry_after_is_a_floor_for_the_wait():
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await call_with_retries(Flaky(failures=1, retry_after=7.0), RetryPolicy(base_delay=0.01), sleep)
    assert waits == [7.0]


async def test_gives_up_after_max_attempts():
    async def sleep(seconds: float) -> None:
        pass

    flaky = Flaky(failures=10)
    with pytest.raises(RetriesExhausted) as info:
        await call_with_retries(flaky, RetryPolicy(max_attempts=4), sleep)
    assert info.value.attempts == 4 and flaky.calls == 4


async def test_a_retry_after_beyond_the_limit_fails_at_once():
    async def sleep(seconds: float) -> None:
        raise AssertionError("should not wait")

    flaky = Flaky(failures=1, retry_after=3600)
    with pytest.raises(RetriesExhausted):
        await call_with_retries(flaky, RetryPolicy(max_retry_after=60), sleep)
    assert flaky.calls == 1


async def test_other_errors_are_not_retried():
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await call_with_retries(broken, RetryPolicy())
    assert calls == 1
