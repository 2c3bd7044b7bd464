"""The master's view of a worker: the moves of ``WORKER_TRANSITIONS`` are taken,
every other one raises (the supervision itself is tested in tests/multiprocess)."""

from __future__ import annotations

import itertools

import pytest

from comet_server.serving.prefork import WORKER_TRANSITIONS, Worker, WorkerState


@pytest.mark.parametrize(("old", "new"), list(itertools.product(WorkerState, WorkerState)),
                         ids=lambda s: s.name)
def test_each_move_is_taken_or_refused_as_the_table_says(old, new) -> None:
    worker = Worker(pid=1, started=0.0, beat_fd=-1, state=old)
    if new in WORKER_TRANSITIONS[old]:
        worker.enter(new)
        assert worker.state is new
    else:
        with pytest.raises(RuntimeError):
            worker.enter(new)
        assert worker.state is old


def test_a_new_worker_serves_and_every_state_is_reachable() -> None:
    assert Worker(pid=1, started=0.0, beat_fd=-1).state is WorkerState.SERVING
    reached = {WorkerState.SERVING}
    for _ in WorkerState:
        reached |= {new for old in reached for new in WORKER_TRANSITIONS[old]}
    assert reached == set(WorkerState)
