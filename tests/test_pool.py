"""The worker pool on a real event loop: jobs on pool threads, outcomes on the loop
thread (one wake-up per burst), the bound, the order of admitted work, inline mode,
the slow-job report."""

from __future__ import annotations

import threading

import pytest

from comet_server.loop import EventLoop
from comet_server.serving.pool import Outcome, WorkerPool, in_pool_thread
from tests.helpers.proc import wait_until


@pytest.fixture
def loop():
    loop = EventLoop()
    runner = threading.Thread(target=loop.run, daemon=True)
    runner.start()
    wait_until(lambda: loop._thread_id is not None, 5, "the loop to run")
    yield loop
    loop.call_soon(loop.stop)
    runner.join(5)
    loop.close()


def on_loop(loop: EventLoop, fn):
    """Run ``fn`` on the loop thread and return its result."""
    box: list = []
    done = threading.Event()

    def run() -> None:
        box.append(fn())
        done.set()

    loop.call_soon(run)
    assert done.wait(5)
    return box[0]


def test_jobs_run_on_pool_threads_and_outcomes_come_back_on_the_loop(loop) -> None:
    pool = WorkerPool(loop, threads=4, queue_depth=100)
    seen: list[tuple[int, bool, Outcome]] = []
    where: list[tuple[int, bool]] = []

    def job(n: int):
        where.append((threading.get_ident(), in_pool_thread()))
        if n == 3:
            raise ValueError("three")
        return n * 2

    def done(outcome: Outcome) -> None:
        seen.append((threading.get_ident(), in_pool_thread(), outcome))

    on_loop(loop, lambda: [pool.submit(lambda n=n: job(n), done) for n in range(10)])
    wait_until(lambda: len(seen) == 10, 5, "every outcome")
    assert all(pool_thread and ident != loop._thread_id for ident, pool_thread in where)
    assert {ident for ident, _, _ in seen} == {loop._thread_id}
    assert not any(pool_thread for _, pool_thread, _ in seen)
    values = sorted(o.value for _, _, o in seen if o.error is None)
    assert values == [0, 2, 4, 8, 10, 12, 14, 16, 18]
    [failed] = [o for _, _, o in seen if o.error is not None]
    assert isinstance(failed.error, ValueError) and failed.exc_info()[0] is ValueError
    assert pool.close(timeout=5)


def test_completions_of_a_burst_wake_the_loop_once(loop) -> None:
    pool = WorkerPool(loop, threads=2, queue_depth=1000)
    wakes = []
    original = pool._complete

    def counted() -> None:
        wakes.append(len(pool._completed))
        original()

    pool._complete = counted  # type: ignore[method-assign]
    gate = threading.Event()
    done: list[Outcome] = []
    # Block the loop so that every completion lands while it cannot run.
    on_loop(loop, lambda: [pool.submit(lambda: 1, done.append) for _ in range(200)])
    loop.call_soon(lambda: gate.wait(5))
    wait_until(lambda: len(done) + len(pool._completed) == 200, 5, "the jobs")
    gate.set()
    wait_until(lambda: len(done) == 200, 5, "every outcome")
    assert len(wakes) < 20, wakes  # bursts, not one wake-up per job
    pool.close(timeout=5)


def test_new_requests_past_the_bound_are_refused_admitted_work_never(loop) -> None:
    pool = WorkerPool(loop, threads=1, queue_depth=2)
    release = threading.Event()
    order: list[str] = []

    def blocker() -> None:
        release.wait(5)

    def submit_rest() -> list[bool]:
        accepted = [pool.submit(lambda n=n: order.append(f"new{n}"), lambda o: None)
                    for n in range(3)]
        accepted += [pool.submit(lambda n=n: order.append(f"step{n}"), lambda o: None,
                                 admit=False) for n in range(3)]
        return accepted

    # The first job runs, holding the only thread; then the queue fills.
    accepted = [on_loop(loop, lambda: pool.submit(blocker, lambda o: None))]
    wait_until(lambda: pool.busy == 1, 5, "the thread to take the first job")
    accepted += on_loop(loop, submit_rest)
    assert accepted == [True, True, True, False, True, True, True]
    assert pool.refused_total == 1 and pool.queued == 5
    release.set()
    wait_until(lambda: len(order) == 5, 5, "the queued jobs")
    # Work of admitted requests goes first, in order; then new requests, in order.
    assert order == ["step0", "step1", "step2", "new0", "new1"]
    pool.close(timeout=5)


def test_inline_runs_the_job_and_its_outcome_at_once(loop) -> None:
    pool = WorkerPool(loop, threads=0, queue_depth=1)
    got: list[Outcome] = []
    assert pool.submit(lambda: 42, got.append) and got[0].value == 42
    assert pool.submit(lambda: 43, got.append)  # no queue: never refused
    assert [o.value for o in got] == [42, 43] and not pool._workers


def test_a_slow_job_is_reported_once_with_its_stack(loop) -> None:
    pool = WorkerPool(loop, threads=1, queue_depth=10)
    release = threading.Event()

    def slow_view() -> None:
        release.wait(5)

    on_loop(loop, lambda: pool.submit(slow_view, lambda o: None, label="GET /export"))
    wait_until(lambda: pool.busy == 1, 5, "the job to start")
    [(label, seconds, stack)] = wait_until(lambda: pool.slow(0.1), 5, "the slow job")
    assert label == "GET /export" and seconds >= 0.1
    assert "in slow_view" in stack and "release.wait(5)" in stack
    assert pool.slow(0.1) == []  # once
    release.set()
    pool.close(timeout=5)
