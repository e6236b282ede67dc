"""Compiled model code is loaded only from a private directory: ours, mode 0700, no symbolic links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inference.serving import fastpath


def test_the_default_directory_is_per_user_not_a_shared_name() -> None:
    assert fastpath.compiled_dir_default().name == f"adsite-compiled-{os.getuid()}"


def test_a_new_directory_is_created_private(tmp_path: Path) -> None:
    made = fastpath.private_dir_ensure(tmp_path / "compiled")
    assert made.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o722])
def test_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    planted = tmp_path / "shared"
    planted.mkdir()
    planted.chmod(mode)
    with pytest.raises(PermissionError):
        fastpath.private_dir_ensure(planted)


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "compiled"
    link.symlink_to(target)
    with pytest.raises(PermissionError):
        fastpath.private_dir_ensure(link)


def test_a_planted_shared_object_is_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled file in the cache that others could have written: the gbdt model serves through its
    booster instead (the fast path refuses, nothing is loaded)."""
    cache = fastpath.private_dir_ensure(tmp_path / "compiled")
    planted = cache / "lleaves-planted.so"
    planted.write_bytes(b"\x7fELF not really")
    planted.chmod(0o666)
    monkeypatch.setattr(fastpath, "_compiled_path", lambda text, cache_dir: planted)

    class Booster:
        def model_to_string(self) -> str:
            return "tree"

    class Model:
        booster = Booster()

    with pytest.raises(PermissionError):
        fastpath.gbdt_compiled_scorer(Model(), cache_dir=cache)
