"""Durable writes: the name holds the old file or the whole new one; hashing agrees with hashlib."""

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from retrieval import durable
from retrieval.durable import (
    CHUNK,
    FILE_MODE,
    append_line,
    atomic_path,
    fsync_tree,
    move_into_place,
    old_enough,
    remove_stale_tmp,
    sha256_bytes,
    sha256_file,
    tmp_name,
    write_bytes_atomically,
    write_json_atomically,
    write_text_atomically,
)


class Boom(Exception):
    pass


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "sub" / "data.bin"  # the folder is created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target and tmp.name.startswith(".")
        tmp.write_bytes(b"new")
        assert not target.exists()  # nothing under the name until the write is whole
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]


def test_atomic_path_leaves_the_old_file_and_no_temporary_one_on_an_exception(tmp_path):
    target = tmp_path / "data.json"
    target.write_bytes(b"old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new fi")
            raise Boom
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_atomic_path_without_a_write_leaves_nothing_and_raises(tmp_path):
    target = tmp_path / "never.bin"
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass  # the writer wrote nothing: there is nothing to commit
    assert list(tmp_path.iterdir()) == []


def test_write_helpers(tmp_path):
    write_bytes_atomically(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    obj = {"name": "Hündin", "n": [1, 2.5]}
    write_json_atomically(tmp_path / "o.json", obj)
    text = (tmp_path / "o.json").read_text(encoding="utf-8")
    assert json.loads(text) == obj and text.endswith("\n") and "Hündin" in text


def test_tmp_name_is_hidden_beside_the_target_and_per_thread(tmp_path):
    tmp = tmp_name(tmp_path / "x.json")
    assert tmp.parent == tmp_path and tmp.name == f".x.json.{os.getpid()}-{threading.get_ident()}.tmp"
    other: list = []
    t = threading.Thread(target=lambda: other.append(tmp_name(tmp_path / "x.json")))
    t.start()
    t.join()
    assert other[0] != tmp  # two threads writing the same file at once never share a temporary file


def test_only_old_temporary_files_are_removed(tmp_path):
    stale, fresh, kept = tmp_path / ".a.1.tmp", tmp_path / ".b.2.tmp", tmp_path / "c.json"
    for p in (stale, fresh, kept):
        p.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert old_enough(stale) and not old_enough(fresh) and not old_enough(tmp_path / "absent")
    remove_stale_tmp(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.2.tmp", "c.json"]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 17])
def test_sha256_file_agrees_with_hashlib(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    seen = []
    assert sha256_file(path, on_chunk=seen.append) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == size and all(n <= CHUNK for n in seen)


def test_exclusive_writes_a_new_file_and_never_replaces_one(tmp_path):
    target = tmp_path / "sub" / "new.bin"
    write_bytes_atomically(target, memoryview(b"abc"), exclusive=True)
    assert target.read_bytes() == b"abc"
    with pytest.raises(FileExistsError):
        write_bytes_atomically(target, b"other", exclusive=True)
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["new.bin"]  # no temporary file is left


def test_exclusive_without_hard_links_checks_then_renames(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    write_bytes_atomically(tmp_path / "a.bin", b"a", exclusive=True)
    with pytest.raises(FileExistsError):
        write_bytes_atomically(tmp_path / "a.bin", b"b", exclusive=True)
    assert (tmp_path / "a.bin").read_bytes() == b"a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_append_line_adds_synced_lines_to_a_log_created_whole(tmp_path, monkeypatch):
    log = tmp_path / "run.jsonl"
    with pytest.raises(FileNotFoundError):
        append_line(log, "x")  # a log is created whole first, so its name is durable
    write_text_atomically(log, "{\"header\": \"Hündin\"}\n")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    append_line(log, "1")
    append_line(log, "2")
    assert log.read_text(encoding="utf-8").splitlines() == ['{"header": "Hündin"}', "1", "2"]
    assert len(synced) == 2  # each line is on disk before append_line returns


def test_fsync_tree_syncs_every_file_and_folder(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x", "a/y", "a/b/z"):
        (tmp_path / name).write_bytes(b"1")
    synced: list = []
    monkeypatch.setattr(durable, "fsync_path", synced.append)
    fsync_tree(tmp_path)
    expected = {tmp_path, tmp_path / "a", tmp_path / "a" / "b", tmp_path / "x", tmp_path / "a" / "y",
                tmp_path / "a" / "b" / "z"}
    assert set(synced) == expected and len(synced) == len(expected)
    synced.clear()
    fsync_tree(tmp_path / "x")  # a file: itself
    assert synced == [tmp_path / "x"]


def test_move_into_place_replaces_a_folder_and_sets_the_old_one_aside(tmp_path):
    dest, staged, aside = tmp_path / "model", tmp_path / "scratch" / "staged", tmp_path / "scratch" / "old"
    dest.mkdir()
    (dest / "w.bin").write_bytes(b"old")
    staged.mkdir(parents=True)
    (staged / "w.bin").write_bytes(b"new")
    assert move_into_place(staged, dest, aside=aside) == dest
    assert (dest / "w.bin").read_bytes() == b"new" and (aside / "w.bin").read_bytes() == b"old"
    assert not staged.exists()
    f = tmp_path / "scratch" / "f.bin"
    f.write_bytes(b"file")
    move_into_place(f, tmp_path / "f.bin", aside=tmp_path / "scratch" / "f-old")  # nothing to set aside
    assert (tmp_path / "f.bin").read_bytes() == b"file" and not (tmp_path / "scratch" / "f-old").exists()


def test_a_whole_file_gets_the_mode_open_gives_new_files_whatever_its_writer_made(tmp_path):
    # safetensors writes 0600: a head trained by one user must be readable by a service running as another
    from safetensors.numpy import save_file

    plain = tmp_path / "plain.txt"
    plain.write_text("made by open()")
    with atomic_path(tmp_path / "head.safetensors") as tmp:
        save_file({"w": np.zeros(3, np.float32)}, str(tmp))
    with atomic_path(tmp_path / "private.bin") as tmp:
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)
    mode = plain.stat().st_mode & 0o777
    assert (tmp_path / "head.safetensors").stat().st_mode & 0o777 == mode == FILE_MODE
    assert (tmp_path / "private.bin").stat().st_mode & 0o777 == mode


def dead_pid() -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a pid that ran and is gone


def test_a_dead_backups_work_folder_and_partial_file_go_and_others_stay(tmp_path):
    """A backup killed mid-write leaves `.b.zip.<host>-PID.work/` and `.b.zip.PID-TID.tmp`: the next one
    clears them when PID is no process of this host. A running writer's (this process), another host's (a
    shared folder: it may be alive there), a folder named as versions before the host named theirs (a user's
    may be named so), and files of other shapes are kept."""
    import socket

    from retrieval.durable import remove_dead_writers

    dead, live, host = dead_pid(), str(os.getpid()), socket.gethostname()
    for pid in (dead, live):
        for work in (f".b.zip.{host}-{pid}.work", f".old.zip.{pid}.work"):
            (tmp_path / work).mkdir()
            (tmp_path / work / "snapshot.sqlite").write_bytes(b"x")
        (tmp_path / f".b.zip.{pid}-123.tmp").write_bytes(b"partial")
        (tmp_path / f".old.zip.{pid}-123.tmp").write_bytes(b"partial")
    kept = [f".b.zip.another-host-{dead}.work", f".take.2024-{dead}.work", ".notes.txt.tmp"]
    for name in kept[:2]:
        (tmp_path / name).mkdir()
    (tmp_path / ".notes.txt.tmp").write_bytes(b"not ours")
    remove_dead_writers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".b.zip.{host}-{live}.work", f".b.zip.{live}-123.tmp", *kept,
         *(name for pid in (dead, live) for name in (f".old.zip.{pid}.work", f".old.zip.{pid}-123.tmp"))])


@pytest.mark.parametrize(("host", "other"), [("example", "web1.example"), ("node", "gpu.node"),
                                             ("a/b", "c")])
def test_a_hosts_backup_folders_are_never_taken_for_anothers(tmp_path, monkeypatch, host, other):
    """A host's name is written with `.` and `/` as `_`: `example` swept `web1.example`'s live folder (its
    name ended the other's after a `.`), and a `/` in a name made the backup fail."""
    import socket

    from retrieval import durable

    monkeypatch.setattr(socket, "gethostname", lambda: other)
    theirs = durable.backup_work_folder(tmp_path / "b.zip")
    theirs.mkdir()
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    monkeypatch.setattr(durable, "process_alive", lambda pid: False)
    mine = durable.backup_work_folder(tmp_path / "b.zip")
    mine.mkdir()
    durable.remove_dead_writers(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [theirs.name]


def test_a_writers_folder_goes_only_when_its_whole_name_matches_and_its_process_is_gone(tmp_path):
    """The one sweep behind backups', restores' and extract-ray's leftovers takes an anchored pattern: a
    folder of a dead pid goes; a live pid's, a file, and names the pattern does not match whole stay."""
    from retrieval.durable import remove_dead_writer_folders

    dead, live = dead_pid(), str(os.getpid())
    for pid in (dead, live):
        (tmp_path / f".data.restore-{pid}").mkdir()
    (tmp_path / f".data.restore-{dead}x").mkdir()  # not the whole name
    (tmp_path / f".other.restore-{dead}").mkdir()  # another target's
    (tmp_path / f".data.restore-{dead}.txt").write_bytes(b"")
    removed = remove_dead_writer_folders(tmp_path, r"\.data\.restore-(?P<pid>\d+)", left_by="a test")
    assert [m.string for m in removed] == [f".data.restore-{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".data.restore-{live}", f".data.restore-{dead}x", f".other.restore-{dead}",
         f".data.restore-{dead}.txt"])
    assert remove_dead_writer_folders(tmp_path / "missing", ".*", left_by="a test") == []


def test_a_link_to_nothing_where_a_folder_should_be_is_said_before_anything_is_made(tmp_path):
    from retrieval.durable import check_parent, make_parent

    (tmp_path / "out").symlink_to(tmp_path / "gone")
    target = tmp_path / "out" / "sub" / "scores.csv"
    for check in (check_parent, make_parent):
        with pytest.raises(NotADirectoryError, match=r"out is a link to .*gone, which is not there"):
            check(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_write_that_fails_names_the_file_asked_for_not_its_temporary_name(tmp_path):
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "out.csv"  # below a file: no folder can be made there
    with pytest.raises(OSError) as e:
        write_text_atomically(tmp_path / "a-file" / "sub" / "out.csv", "a")
    assert ".tmp" not in str(e.value)
    with pytest.raises(OSError) as e:
        with atomic_path(tmp_path / "gone" / "x.csv") as tmp:
            tmp.parent.rmdir()  # the folder goes away before the write
            tmp.write_text("a")
    assert e.value.filename == str(tmp_path / "gone" / "x.csv") and ".tmp" not in str(e.value)
    assert not target.exists()


def test_a_file_where_a_folder_is_needed_is_named(tmp_path):
    """`--out x.wav/f.json` said "[Errno 17] File exists: 'x.wav'"."""
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    for target in (tmp_path / "x.wav" / "f.json", tmp_path / "x.wav" / "deeper" / "f.json"):
        with pytest.raises(NotADirectoryError) as e:
            write_json_atomically(target, {"a": 1})
        assert str(e.value) == f"{tmp_path / 'x.wav'} is a file, not a folder: cannot write {target} below it"
    assert (tmp_path / "x.wav").read_bytes() == b"RIFF"


def test_a_folder_that_cannot_be_written_in_is_said_before_anything_is_written(tmp_path, monkeypatch):
    """A read-only folder (a read-only mount refuses even root, whom permissions do not) was found only when
    the whole file had been made: hours of PaSST features lost, naming a hidden temporary file."""
    locked = tmp_path / "ro"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(durable.os, "access",
                        lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    made = []
    with pytest.raises(PermissionError) as e:
        with atomic_path(locked / "f.json") as tmp:
            made.append(tmp)
    assert made == [] and f"cannot write in {locked}" in str(e.value) and ".tmp" not in str(e.value)
    assert list(locked.iterdir()) == []
    write_json_atomically(tmp_path / "f.json", {"a": 1})  # a folder it can write in is as before


def test_a_line_cut_short_by_a_killed_writer_does_not_swallow_the_next(tmp_path):
    """A kill mid-append left `{"a": ` at the end of the log; the next line was glued onto it and lost to
    any reader that skips what it cannot parse."""
    log = tmp_path / "run.jsonl"
    write_text_atomically(log, "")
    append_line(log, json.dumps({"a": 1}))
    with open(log, "a", encoding="utf-8") as f:
        f.write('{"b": ')  # the killed writer's half line
    append_line(log, json.dumps({"c": 3}))
    lines = log.read_text().split("\n")
    assert lines == ['{"a": 1}', '{"b": ', '{"c": 3}', ""]
    append_line(log, json.dumps({"d": 4}))  # after a whole line: no blank line between
    assert log.read_text().endswith('{"c": 3}\n{"d": 4}\n')
