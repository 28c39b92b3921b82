"""The egress retry/failover policy with fake connectors and a sleep that only records."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.carriers.base import (
    CarrierError,
    ConnectionFailed,
    RecipientOptedOut,
    RejectedByCarrier,
    Submission,
    SubmitResult,
    Throttled,
    TransientError,
)
from services.egress.delivery import (
    PermanentFailure,
    RetryBudgetExhausted,
    backoff_delay,
    submit_with_failover,
)

SUB = Submission(message_id="m-1", to="+8613812345678", sender=None, text="hi", encoding="gsm7", segments=1)


class FakeConnector:
    """Answers from a script: each entry is an error to raise or "ok"; the last one repeats."""

    def __init__(self, name: str, *script: CarrierError | str) -> None:
        self.name = name
        self.script = list(script) or ["ok"]
        self.calls = 0

    async def submit(self, sub: Submission) -> SubmitResult:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(step, CarrierError):
            raise step
        return SubmitResult(f"{self.name}-{sub.message_id}", self.name)

    async def close(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.acquired: list[str] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)

    async def acquire(self, carrier: str) -> None:
        self.acquired.append(carrier)


def run(coro: Awaitable[Any]) -> Any:
    async def go():
        return await asyncio.wait_for(coro, timeout=10)

    return asyncio.run(go())


def submit(connectors: list[FakeConnector], rec: Recorder, *, max_attempts: int = 5,
           backoff_base: float = 0.1, backoff_max: float = 10, rng: Callable[[], float] = lambda: 1.0,
           **kw: Any) -> SubmitResult:
    return run(submit_with_failover(connectors, SUB, max_attempts=max_attempts, backoff_base=backoff_base,
                                    backoff_max=backoff_max, sleep=rec.sleep, rng=rng,
                                    acquire=rec.acquire, **kw))


def test_a_transient_error_is_retried_on_the_same_carrier_after_a_backoff_then_succeeds():
    a = FakeConnector("a", TransientError("service unavailable"), "ok")
    b = FakeConnector("b")
    rec = Recorder()
    assert submit([a, b], rec) == SubmitResult("a-m-1", "a")
    assert (a.calls, b.calls) == (2, 0)
    assert rec.delays == [0.1]
    assert rec.acquired == ["a", "a"]  # the rate limiter is asked before every attempt


def test_throttled_waits_the_carriers_retry_after_instead_of_the_backoff():
    a = FakeConnector("a", Throttled(retry_after=1.5), Throttled(retry_after=None), "ok")
    rec = Recorder()
    assert submit([a], rec, rng=lambda: 0.5).carrier == "a"
    assert rec.delays == [1.5, 0.5 * 0.2]  # then, without Retry-After, the jittered backoff


def test_an_unreachable_carrier_fails_over_to_the_second_at_once():
    a = FakeConnector("a", ConnectionFailed("connect failed: refused"))
    b = FakeConnector("b")
    rec = Recorder()
    assert submit([a, b], rec) == SubmitResult("b-m-1", "b")
    assert (a.calls, b.calls) == (1, 1)
    assert rec.delays == []
    assert rec.acquired == ["a", "b"]


def test_when_every_carrier_is_unreachable_it_backs_off_and_starts_again_from_the_first():
    a = FakeConnector("a", ConnectionFailed("refused"), "ok")
    b = FakeConnector("b", ConnectionFailed("refused"))
    rec = Recorder()
    assert submit([a, b], rec).carrier == "a"
    assert rec.acquired == ["a", "b", "a"]
    assert rec.delays == [0.1]


@pytest.mark.parametrize("error", [RecipientOptedOut("recipient opted out"),
                                   RejectedByCarrier("invalid destination")])
def test_a_permanent_error_stops_at_once_without_trying_another_carrier(error):
    a = FakeConnector("a", TransientError("503"), error)
    b = FakeConnector("b")
    rec = Recorder()
    with pytest.raises(PermanentFailure) as info:
        submit([a, b], rec)
    failure = info.value
    assert (failure.reason, failure.carrier, failure.attempts) == (error.reason, "a", 2)
    assert failure.error is error
    assert (a.calls, b.calls) == (2, 0)


def test_an_exhausted_budget_names_the_last_error_of_each_carrier_and_the_attempts():
    a = FakeConnector("a", ConnectionFailed("connect failed: refused"))
    b = FakeConnector("b", TransientError("HTTP 502"), TransientError("service unavailable"))
    rec = Recorder()
    with pytest.raises(RetryBudgetExhausted) as info:
        submit([a, b], rec, max_attempts=4)
    exhausted = info.value
    assert exhausted.attempts == 4
    assert a.calls + b.calls == 4  # counted across carriers
    assert exhausted.reason == ("no carrier took it after 4 attempt(s): a: ConnectionFailed: connect failed: refused; "
                                "b: TransientError: service unavailable")
    assert set(exhausted.errors) == {"a", "b"}
    assert len(rec.delays) == 2  # no sleep after the last attempt, none before failing over


def test_backoff_delays_double_up_to_the_cap():
    a = FakeConnector("a", TransientError("503"))
    rec = Recorder()
    with pytest.raises(RetryBudgetExhausted):
        submit([a], rec, max_attempts=8, backoff_base=0.5, backoff_max=4)
    assert rec.delays == [0.5, 1, 2, 4, 4, 4, 4]


@given(seed=st.integers(0, 2**32), base=st.floats(0.001, 2), cap=st.floats(0.01, 30),
       attempts=st.integers(1, 12))
def test_jittered_delays_stay_within_zero_and_the_capped_exponential(seed, base, cap, attempts):
    a = FakeConnector("a", TransientError("503"))
    rec = Recorder()
    with pytest.raises(RetryBudgetExhausted):
        submit([a], rec, max_attempts=attempts, backoff_base=base, backoff_max=cap,
               rng=random.Random(seed).random)
    assert len(rec.delays) == attempts - 1
    for retry, delay in enumerate(rec.delays):
        assert 0 <= delay <= min(cap, base * 2**retry)


def test_backoff_delay_is_full_jitter_of_the_capped_exponential():
    assert backoff_delay(0, 0.2, 10, lambda: 0.0) == 0
    assert backoff_delay(3, 0.2, 10, lambda: 0.5) == pytest.approx(0.8)
    assert backoff_delay(20, 0.2, 10, lambda: 0.999) == pytest.approx(9.99)


def test_failover_after_moves_on_from_a_carrier_that_keeps_answering_503():
    a = FakeConnector("a", TransientError("service unavailable"))
    b = FakeConnector("b")
    rec = Recorder()
    assert submit([a, b], rec, failover_after=2).carrier == "b"
    assert rec.acquired == ["a", "a", "b"]
    assert rec.delays == [0.1]


def test_errors_that_are_not_carrier_errors_propagate_unchanged():
    class Broken(FakeConnector):
        async def submit(self, sub):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        submit([Broken("a")], Recorder())


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"failover_after": 0}])
def test_nonsense_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        submit([FakeConnector("a")], Recorder(), **kwargs)


def test_no_connector_is_refused():
    with pytest.raises(ValueError):
        submit([], Recorder())
