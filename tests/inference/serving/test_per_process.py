"""One value per process: built once, replaced whole, and never shared with a forked child."""

from __future__ import annotations

import os

from inference.process_local import PerProcess


def test_built_once_on_first_use_and_replaced_whole() -> None:
    built: list[object] = []
    holder: PerProcess[object] = PerProcess(lambda: built.append(object()) or built[-1])
    assert holder.peek() is None and built == []
    first = holder.get()
    assert holder.get() is first and len(built) == 1
    mine = object()
    assert holder.install(mine) is first
    assert holder.get() is mine
    holder.install(None)
    assert holder.get() is not mine and len(built) == 2


def test_a_forked_child_builds_its_own() -> None:
    holder: PerProcess[list[int]] = PerProcess(lambda: [os.getpid()])
    parents = holder.get()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it gets must be its own, built in it
        try:
            ok = holder.peek() is None and holder.get() is not parents and holder.get() == [os.getpid()]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert holder.get() is parents  # the parent's stays
