"""Receive backoff: capped, jittered, reset by success; and the loop that uses it."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localmesh.worker import Backoff, ConnectionLost, Worker


def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(42))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder


def test_the_same_seed_gives_the_same_delays() -> None:
    def run() -> list[float]:
        backoff = Backoff(base=0.1, cap=30.0, rng=random.Random(9))
        return [backoff.next_delay() for _ in range(12)]

    assert run() == run()


def test_reset_starts_again_from_the_base() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=2**32))
def test_no_delay_ever_exceeds_the_cap(attempts: int, seed: int) -> None:
    backoff = Backoff(base=0.1, cap=30.0, rng=random.Random(seed), attempts=attempts)
    assert 0.05 <= backoff.next_delay() <= 30.0


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


class FlakyQueues:
    """``receive`` follows a plan: an exception is raised, anything else returned."""

    def __init__(self, plan: list[Any], done: asyncio.Event) -> None:
        self.plan = list(plan)
        self.done = done

    async def receive(self, name: str, *, create: bool, wait: bool) -> Any:
        if not self.plan:
            self.done.set()
            await asyncio.Event().wait()  # a long poll that never answers
        step = self.plan.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


class FlakyRoom:
    token = "unused"

    def __init__(self, plan: list[Any], done: asyncio.Event) -> None:
        self.queues = FlakyQueues(plan, done)


class Counting(Worker):
    async def process_message(self, **kwargs: Any) -> None:
        pass


async def test_the_loop_backs_off_on_failures_and_resets_after_success() -> None:
    lost = ConnectionLost("gone")
    plan = [lost, lost, lost, {"prompt": "a"}, lost, lost, None, lost]
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)  # the injected clock: no real time passes

    done = asyncio.Event()
    worker = Counting(
        queue="q", backoff=Backoff(base=0.1, cap=0.3, rng=random.Random(5)), sleep=fake_sleep
    )
    await worker.start(FlakyRoom(plan, done))  # type: ignore[arg-type]
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.wait_for(worker.stop(), 5)

    expected = Backoff(base=0.1, cap=0.3, rng=random.Random(5))
    ladder = [expected.next_delay() for _ in range(3)]
    expected.reset()
    ladder += [expected.next_delay() for _ in range(2)]
    expected.reset()  # the empty receive (None) is a success too
    ladder += [expected.next_delay()]
    assert slept == ladder
    ceilings = [0.1, 0.2, 0.3, 0.1, 0.2, 0.1]  # capped at 0.3, back to 0.1 after each success
    assert all(c / 2 <= d <= c for d, c in zip(slept, ceilings, strict=True))
    assert worker.stats.receive_failures == 6
    assert worker.stats.processed == 1
    assert "gone" in (worker.stats.last_error or "")


async def test_stop_interrupts_a_backoff_sleep() -> None:
    sleeping = asyncio.Event()

    async def endless_sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    worker = Counting(queue="q", sleep=endless_sleep)
    await worker.start(FlakyRoom([ConnectionLost("down")], asyncio.Event()))  # type: ignore[arg-type]
    await asyncio.wait_for(sleeping.wait(), 5)
    await asyncio.wait_for(worker.stop(), 2)
    assert not worker.running
