"""Issue 12/13: backup and prune run off the supervisor thread (their own thread and
connection), so a long one never holds up the loop that feeds the systemd watchdog, and a
run still going is not started twice."""

from __future__ import annotations

import threading

from gateway.appliance.supervisor import Periodic, Supervisor
from tests.pipeline.harness import wait_until


def test_background_task_runs_in_its_own_thread_and_never_twice():
    release = threading.Event()
    started: list[str] = []

    def slow_backup() -> None:
        started.append(threading.current_thread().name)
        release.wait(120)

    quick: list[str] = []
    sup = Supervisor.__new__(Supervisor)  # only the task scheduling is exercised here
    sup.tasks = [Periodic("backup", 0.0, slow_backup, background=True),
                 Periodic("inline", 0.0, lambda: quick.append(threading.current_thread().name))]
    try:
        sup._housekeeping(1.0)  # returns at once although the backup blocks
        wait_until(lambda: started, 30, "the backup thread")
        assert started == ["housekeeping-backup"]
        assert quick == [threading.current_thread().name]
        sup._housekeeping(2.0)  # still running: this round is skipped, not started again
        assert started == ["housekeeping-backup"] and len(quick) == 2
        assert sup.join_tasks(0.05) == ["backup"]
    finally:
        release.set()
    assert sup.join_tasks(30) == []
    sup._housekeeping(3.0)  # finished: the next round starts a new run
    wait_until(lambda: len(started) == 2, 30, "the second run")
    release.set()
    assert sup.join_tasks(30) == []
