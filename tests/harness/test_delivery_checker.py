"""The delivery checker on doctored histories: each kind of problem is found and explained."""

from __future__ import annotations

import pytest

from localmesh.fixtures.delivery import DeliveryHistory, check_delivery


async def _value(value=None):
    return value


async def _boom():
    raise ConnectionError("dropped")


async def clean_history() -> DeliveryHistory:
    """a, b, c sent in turn; a and b received in order; c left in the queue."""
    history = DeliveryHistory()
    for key in "abc":
        await history.send("q", key, _value())
    await history.receive("q", _value("a"), key=str)
    await history.receive("q", _value("b"), key=str)
    await history.receive("q", _value(None), key=str)  # an empty long poll
    history.left_in_queue("q", ["c"])
    return history


async def test_a_clean_history_passes() -> None:
    report = check_delivery(await clean_history())
    report.assert_ok()
    assert (report.sent, report.delivered, report.left) == (3, 2, 1)


async def test_an_injected_duplicate_is_found_and_explained() -> None:
    history = await clean_history()
    await history.receive("q", _value("a"), key=str, client="rx2")
    report = check_delivery(history)
    assert [p.kind for p in report.problems] == ["duplicate"]
    with pytest.raises(AssertionError, match=r"queue 'q': duplicate: 'a' was delivered 2 times.*rx2"):
        report.assert_ok()


async def test_an_injected_loss_is_found_and_explained() -> None:
    history = await clean_history()
    history.left["q"] = []  # c vanished
    report = check_delivery(history)
    assert [p.kind for p in report.problems] == ["loss"]
    assert "send of 'c'" in report.problems[0].explanation


async def test_a_failed_receive_excuses_one_loss_only_when_allowed() -> None:
    history = await clean_history()
    history.left["q"] = []
    with pytest.raises(ConnectionError):
        await history.receive("q", _boom(), key=str)
    assert check_delivery(history).ok
    assert [p.kind for p in check_delivery(history, failed_receive_may_lose=False).problems] == ["loss"]


async def test_a_message_nobody_sent_is_a_phantom() -> None:
    history = await clean_history()
    await history.receive("q", _value("zz"), key=str)
    assert [p.kind for p in check_delivery(history).problems] == ["phantom"]


async def test_a_later_message_delivered_first_is_a_reorder() -> None:
    history = DeliveryHistory()
    await history.send("q", "a", _value())
    await history.send("q", "b", _value())
    await history.receive("q", _value("b"), key=str)
    await history.receive("q", _value("a"), key=str)
    report = check_delivery(history)
    assert [p.kind for p in report.problems] == ["reorder"]
    assert "'b' was delivered" in report.problems[0].explanation
    assert "'a'" in report.problems[0].explanation
    assert check_delivery(history, check_order=False).ok


async def test_passing_a_message_still_queued_is_a_reorder() -> None:
    history = DeliveryHistory()
    await history.send("q", "a", _value())
    await history.send("q", "b", _value())
    await history.receive("q", _value("b"), key=str)
    history.left_in_queue("q", ["a"])
    assert "is still in the queue" in check_delivery(history).problems[0].explanation


async def test_concurrent_sends_have_no_order_to_keep() -> None:
    history = DeliveryHistory()
    a = history.invoke("send", "q", "a")
    b = history.invoke("send", "q", "b")  # b began before a was acknowledged
    history.complete(a)
    history.complete(b)
    await history.receive("q", _value("b"), key=str)
    await history.receive("q", _value("a"), key=str)
    assert check_delivery(history).ok


async def test_a_receive_overlapping_a_failed_one_is_not_judged_for_order() -> None:
    history = DeliveryHistory()
    await history.send("q", "a", _value())
    await history.send("q", "b", _value())
    dying = history.invoke("receive", "q")  # took a, then its connection dropped: a put back
    await history.receive("q", _value("b"), key=str)
    history.fail(dying)
    await history.receive("q", _value("a"), key=str)
    assert check_delivery(history).ok


async def test_an_unknown_send_may_show_up_once_or_not_at_all() -> None:
    history = DeliveryHistory()
    with pytest.raises(ConnectionError):
        await history.send("q", "a", _boom())
    with pytest.raises(ConnectionError):
        await history.send("q", "b", _boom())
    await history.receive("q", _value("a"), key=str)
    assert check_delivery(history).ok
    await history.receive("q", _value("a"), key=str)
    assert [p.kind for p in check_delivery(history).problems] == ["duplicate"]


async def test_queues_are_judged_apart() -> None:
    history = DeliveryHistory()
    await history.send("q1", "a", _value())
    await history.send("q2", "b", _value())
    await history.receive("q2", _value("b"), key=str)
    history.left_in_queue("q1", ["a"])
    assert check_delivery(history).ok
