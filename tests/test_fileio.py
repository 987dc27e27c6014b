"""Atomic writes: the new content or the old one, never half a file, no temporary left behind."""

import pytest

from cvlab.fileio import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_create_folders_and_replace(tmp_path):
    target = tmp_path / "a" / "b" / "model.onnx"
    assert atomic_write_bytes(target, b"v1") == target
    atomic_write_bytes(target, b"v2")
    assert target.read_bytes() == b"v2"
    assert atomic_write_text(tmp_path / "t.txt", "hi").read_text() == "hi"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.onnx"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer crashed"), atomic_path(target) as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_writer_that_never_creates_the_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x.keras"):
        pass
    assert list(tmp_path.iterdir()) == []
