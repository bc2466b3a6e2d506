"""The agent pool: slots for live CLIs, room made by asking idle holders, then ServerBusy;
and memory: idle holders asked to close while too little is left."""

from __future__ import annotations

import asyncio

import pytest

from chat.agent.pool import AgentPool, NoSpareSlot, SlotWaitAbandoned
from chat.exceptions import ServerBusy

pytestmark = pytest.mark.timeout(5)


@pytest.fixture(autouse=True)
def _two_slots(settings) -> None:
    settings.MAX_LIVE_AGENTS = 2
    settings.AGENT_SLOT_WAIT_SECONDS = 0.05
    settings.AGENT_MIN_AVAILABLE_MB = 0  # the memory tests below turn it on


class Holder:
    """A runner as the pool sees it; when asked, it closes its CLI soon (unless stubborn)."""

    def __init__(self, pool: AgentPool, session_id: str, *, busy=False, stubborn=False) -> None:
        self.pool = pool
        self.session_id = session_id
        self.busy = busy
        self.stubborn = stubborn
        self.asked = 0

    def close_agent_soon(self) -> None:
        self.asked += 1
        if not self.stubborn:
            asyncio.get_running_loop().call_soon(self.pool.release, self)


@pytest.fixture
def pool() -> AgentPool:
    return AgentPool()


async def full(pool: AgentPool, *holders: Holder) -> None:
    for holder in holders:
        await pool.acquire(holder)


async def test_a_free_slot_is_taken_at_once(pool) -> None:
    await pool.acquire(Holder(pool, "a"))

    assert pool.live == 1


async def test_release_gives_the_slot_back(pool) -> None:
    holder = Holder(pool, "a")
    await pool.acquire(holder)
    pool.release(holder)

    assert pool.live == 0


async def test_release_by_a_stale_holder_of_the_same_session_keeps_the_slot(pool) -> None:
    await pool.acquire(Holder(pool, "a"))
    pool.release(Holder(pool, "a"))  # an older runner of the session, already gone

    assert pool.live == 1


async def test_when_full_the_least_recently_used_idle_holder_is_asked_to_close(pool) -> None:
    a, b = Holder(pool, "a"), Holder(pool, "b")
    await full(pool, a, b)
    pool.touch(a)  # b is now the least recently used

    await pool.acquire(Holder(pool, "c"))

    assert (a.asked, b.asked) == (0, 1)
    assert pool.live == 2


async def test_busy_holders_are_never_asked_and_the_caller_gets_server_busy(pool) -> None:
    a, b = Holder(pool, "a", busy=True), Holder(pool, "b", busy=True)
    await full(pool, a, b)
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(ServerBusy):
        await pool.acquire(Holder(pool, "c"))

    assert 0.05 <= loop.time() - started < 0.5
    assert (a.asked, b.asked) == (0, 0)


async def test_an_idle_holder_that_does_not_close_is_asked_once(pool) -> None:
    a, b = Holder(pool, "a", stubborn=True), Holder(pool, "b", busy=True)
    await full(pool, a, b)

    with pytest.raises(ServerBusy):
        await pool.acquire(Holder(pool, "c"))

    assert a.asked == 1


async def test_a_waiter_gets_the_slot_as_soon_as_a_busy_holder_releases(pool, settings) -> None:
    settings.AGENT_SLOT_WAIT_SECONDS = 2
    a, b = Holder(pool, "a", busy=True), Holder(pool, "b", busy=True)
    await full(pool, a, b)
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, pool.release, a)

    started = loop.time()
    await pool.acquire(Holder(pool, "c"))

    assert loop.time() - started < 0.5
    assert pool.live == 2


async def test_a_stop_ends_the_wait_at_once(pool, settings) -> None:
    settings.AGENT_SLOT_WAIT_SECONDS = 2
    await full(pool, Holder(pool, "a", busy=True), Holder(pool, "b", busy=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, stop.set)

    started = loop.time()
    with pytest.raises(SlotWaitAbandoned):
        await pool.acquire(Holder(pool, "c"), stop=stop)

    assert loop.time() - started < 0.5
    assert pool.live == 2


async def test_a_stop_already_set_gives_up_when_the_pool_is_full(pool) -> None:
    await full(pool, Holder(pool, "a", busy=True), Holder(pool, "b", busy=True))
    stop = asyncio.Event()
    stop.set()

    with pytest.raises(SlotWaitAbandoned):
        await pool.acquire(Holder(pool, "c"), stop=stop)


async def test_a_stop_does_not_matter_while_a_slot_is_free(pool) -> None:
    stop = asyncio.Event()
    stop.set()

    await pool.acquire(Holder(pool, "a"), stop=stop)

    assert pool.live == 1


async def test_two_waiters_for_one_released_slot_one_gets_it_one_is_busy(pool, settings) -> None:
    settings.AGENT_SLOT_WAIT_SECONDS = 0.1
    a, b = Holder(pool, "a", busy=True), Holder(pool, "b", busy=True)
    await full(pool, a, b)
    asyncio.get_running_loop().call_later(0.01, pool.release, a)

    results = await asyncio.gather(
        pool.acquire(Holder(pool, "c", busy=True)),
        pool.acquire(Holder(pool, "d", busy=True)),
        return_exceptions=True,
    )

    assert sorted(type(r).__name__ for r in results) == ["NoneType", "ServerBusy"]
    assert pool.live == 2


async def test_touch_of_a_holder_without_a_slot_changes_nothing(pool) -> None:
    pool.touch(Holder(pool, "a"))

    assert pool.live == 0


async def test_a_spare_takes_a_free_slot(pool) -> None:
    await pool.acquire(Holder(pool, "a"), spare=True)

    assert pool.live == 1


async def test_a_spare_never_waits_nor_asks_anyone_to_close(pool, settings) -> None:
    settings.AGENT_SLOT_WAIT_SECONDS = 2
    a, b = Holder(pool, "a"), Holder(pool, "b")
    await full(pool, a, b)
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(NoSpareSlot):
        await pool.acquire(Holder(pool, "c"), spare=True)

    assert loop.time() - started < 0.01
    assert (a.asked, b.asked) == (0, 0) and pool.live == 2


async def test_a_spare_never_takes_a_slot_a_caller_waits_for(pool, settings) -> None:
    settings.AGENT_SLOT_WAIT_SECONDS = 2
    a, b = Holder(pool, "a", busy=True), Holder(pool, "b", busy=True)
    await full(pool, a, b)
    waiter = asyncio.create_task(pool.acquire(Holder(pool, "c")))
    await asyncio.sleep(0.01)
    pool.release(a)  # the waiter has not run yet: the slot is free, and wanted

    with pytest.raises(NoSpareSlot):
        await pool.acquire(Holder(pool, "d"), spare=True)

    await waiter
    assert pool.live == 2


async def test_an_unused_spare_is_asked_to_close_before_the_least_recently_used(pool) -> None:
    used, spare = Holder(pool, "a"), Holder(pool, "b")
    await pool.acquire(used)
    await pool.acquire(spare, spare=True)  # more recent, but never used

    await pool.acquire(Holder(pool, "c"))

    assert (used.asked, spare.asked) == (0, 1)


async def test_a_spare_once_used_is_asked_in_its_turn(pool) -> None:
    a, b = Holder(pool, "a"), Holder(pool, "b")
    await pool.acquire(a, spare=True)
    await pool.acquire(b)
    pool.touch(a)  # a's first turn: b is now the least recently used

    await pool.acquire(Holder(pool, "c"))

    assert (a.asked, b.asked) == (0, 1)


# --- memory ----------------------------------------------------------------------


class Machine:
    """Memory left as a fake reader sees it: what is free with no CLI, less each live one's."""

    def __init__(self, free_mb: float, per_cli_mb: float = 100) -> None:
        self.free_mb = free_mb
        self.per_cli_mb = per_cli_mb
        self.pool = AgentPool(available_mb=self.available_mb)

    def available_mb(self) -> float:
        return self.free_mb - self.per_cli_mb * self.pool.live


@pytest.fixture
def pressed(settings) -> Machine:
    """Eight slots; 250 MiB free with no CLI, 100 less each live one, and 200 to keep
    free: the first CLI starts without pressure, any more under it."""
    settings.MAX_LIVE_AGENTS = 8
    settings.AGENT_MIN_AVAILABLE_MB = 200
    return Machine(free_mb=250)


async def test_short_of_memory_the_least_recently_used_idle_holders_close_until_enough_is_left(
    pressed,
) -> None:
    pool = pressed.pool
    a, b, c = Holder(pool, "a"), Holder(pool, "b"), Holder(pool, "c")
    pressed.free_mb = 1000  # room for all three
    await full(pool, a, b, c)
    pool.touch(a)  # the least recently used is now b, then c
    pressed.free_mb = 350  # 50 left with three live, 150 with two, 250 with one

    await pool.acquire(Holder(pool, "d"))

    assert (a.asked, b.asked, c.asked) == (0, 1, 1)
    assert pool.live == 2


async def test_short_of_memory_an_unused_spare_closes_first_and_a_busy_holder_never(
    pressed,
) -> None:
    pool = pressed.pool
    busy, used, spare = Holder(pool, "a", busy=True), Holder(pool, "b"), Holder(pool, "c")
    pressed.free_mb = 1000
    await full(pool, busy, used)
    await pool.acquire(spare, spare=True)
    pressed.free_mb = 450  # 150 left with three live, 250 with two

    await pool.acquire(Holder(pool, "d"))

    assert (busy.asked, used.asked, spare.asked) == (0, 0, 1)


async def test_short_of_memory_with_nothing_idle_the_cli_starts_all_the_same(pressed) -> None:
    pool = pressed.pool
    await full(pool, Holder(pool, "a", busy=True))
    loop = asyncio.get_running_loop()

    started = loop.time()
    await pool.acquire(Holder(pool, "b"))

    assert loop.time() - started < 0.01
    assert pool.live == 2


async def test_short_of_memory_a_holder_that_does_not_close_delays_the_start_by_the_wait(
    pressed,
) -> None:
    pool = pressed.pool
    stubborn = Holder(pool, "a", stubborn=True)
    await full(pool, stubborn)
    loop = asyncio.get_running_loop()

    started = loop.time()
    await pool.acquire(Holder(pool, "b"))

    assert 0.05 <= loop.time() - started < 0.5
    assert stubborn.asked == 1 and pool.live == 2


async def test_short_of_memory_no_spare_is_started(pressed) -> None:
    pool = pressed.pool
    await full(pool, Holder(pool, "a"))  # 150 left

    with pytest.raises(NoSpareSlot):
        await pool.acquire(Holder(pool, "b"), spare=True)

    assert pool.live == 1


async def test_with_enough_memory_left_nobody_is_asked(pressed) -> None:
    pool = pressed.pool
    pressed.free_mb = 1000
    a = Holder(pool, "a")
    await full(pool, a)

    await pool.acquire(Holder(pool, "b"))
    await pool.acquire(Holder(pool, "c"), spare=True)

    assert a.asked == 0 and pool.live == 3


async def test_a_minimum_of_zero_never_reads_the_memory(settings) -> None:
    settings.AGENT_MIN_AVAILABLE_MB = 0

    def unreadable() -> float:
        raise AssertionError("memory read with the check off")

    pool = AgentPool(available_mb=unreadable)
    await pool.acquire(Holder(pool, "a"))
    await pool.acquire(Holder(pool, "b"), spare=True)

    assert pool.live == 2
