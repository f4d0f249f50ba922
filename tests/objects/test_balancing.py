"""The board on which gunicorn's worker processes share how many connections each holds
(objects/balancing.py), used by the worker to leave a new connection to the one holding fewest."""
import os
import subprocess
import sys

import pytest

from objects import balancing


@pytest.fixture
def board():
    return balancing.Board(places=4)


def test_each_process_gets_its_own_place(board):
    first, second = board.claim(os.getpid()), board.claim(os.getppid())
    assert first is not None and second is not None and first != second, (
        f"two live processes were given places {first} and {second}")


def test_a_worker_holding_fewer_is_seen(board):
    mine, other = board.claim(os.getpid()), board.claim(os.getppid())
    board.publish(mine, 3)
    board.publish(other, 2)
    assert board.fewer_elsewhere(mine, 3), "a worker holding 2 connections was not seen by one holding 3"
    assert not board.fewer_elsewhere(other, 2), "a worker holding 2 saw one holding 3 as holding fewer"


def test_equal_workers_do_not_wait_for_each_other(board):
    mine, other = board.claim(os.getpid()), board.claim(os.getppid())
    board.publish(mine, 2)
    board.publish(other, 2)
    assert not board.fewer_elsewhere(mine, 2), "two workers holding as many connections each left it to the other"


def test_a_worker_that_stopped_writing_is_ignored(board, monkeypatch):
    mine, other = board.claim(os.getpid()), board.claim(os.getppid())
    board.publish(other, 0)
    later = balancing.time.monotonic() + balancing.STALE_SECONDS + 1
    monkeypatch.setattr(balancing.time, "monotonic", lambda: later)
    board.publish(mine, 5)
    assert not board.fewer_elsewhere(mine, 5), "a worker silent for longer than STALE_SECONDS was still waited for"


def test_the_place_of_a_dead_process_is_reused(board):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    for _ in range(3):
        board.claim(os.getpid())
    left = board.claim(int(dead.stdout))
    assert board.claim(os.getpid()) == left, "the place of a process that no longer exists was not given out again"


def test_a_released_place_is_reused(board):
    places = [board.claim(os.getpid()) for _ in range(4)]
    assert board.claim(os.getpid()) is None, "a full board gave out a fifth place"
    board.release(places[2])
    assert board.claim(os.getpid()) == places[2], "a released place was not given out again"
