"""Atomic writes: the old file or the new one, never half; permissions, umask, symlinks, leftovers, errors."""

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from nndl.errors import OutputError
from nndl.files import atomic
from nndl.files.atomic import atomic_write_bytes, atomic_writer

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions, signals and symlinks")


def temporaries(directory, name):
    """The temporary files of target ``name`` in ``directory``."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}\.tmp")
    return sorted(p.name for p in directory.iterdir() if pattern.fullmatch(p.name))


def run_python(code, *, check=True):
    """Run ``code`` in a fresh interpreter; returns its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result.stdout


def dead_pid():
    """The pid of a process that has just exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_exception_in_block_keeps_old_file_and_removes_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_writer(path) as f:
            f.write(b"half of the new")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert temporaries(tmp_path, "f.bin") == []


def test_temporary_is_in_the_targets_directory_and_named_after_it(tmp_path):
    path = tmp_path / "model.json"
    with atomic_writer(path) as f:
        f.write(b"x")
        [name] = temporaries(tmp_path, "model.json")
        assert name.startswith(f".model.json.{os.getpid()}.")
        assert not path.exists()                              # nothing at the target until the end
    assert temporaries(tmp_path, "model.json") == []


def test_creates_missing_directories(tmp_path):
    path = tmp_path / "a" / "b" / "c.txt"
    atomic_write_bytes(path, b"deep")
    assert path.read_bytes() == b"deep"


def test_kill_9_in_the_middle_of_a_large_write_then_the_next_write_cleans_up(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"the old file")
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from nndl.files.atomic import atomic_writer
        chunk = bytes(1 << 20)
        with atomic_writer({str(path)!r}) as f:
            for i in range(4096):                        # 4 GB if never stopped
                f.write(chunk)
                if i == 8:
                    print("writing", flush=True)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        while not any(os.path.getsize(tmp_path / t) > 16 << 20 for t in temporaries(tmp_path, "big.bin")):
            time.sleep(0.01)                             # well into the write
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"the old file"          # untouched
    [leftover] = temporaries(tmp_path, "big.bin")
    assert leftover.startswith(f".big.bin.{writer.pid}.")

    atomic_write_bytes(path, b"the new file")
    assert path.read_bytes() == b"the new file"
    assert temporaries(tmp_path, "big.bin") == []


def test_leftovers_removed_only_when_their_writer_is_gone_or_they_are_stale(tmp_path):
    alive = tmp_path / f".f.bin.{os.getpid()}.0123abcd.tmp"      # a writer still running (this process)
    dead = tmp_path / f".f.bin.{dead_pid()}.0123abcd.tmp"
    stale = tmp_path / f".f.bin.{os.getpid()}.89abcdef.tmp"      # running pid, but untouched for too long
    other_target = tmp_path / f".g.bin.{dead_pid()}.0123abcd.tmp"
    look_alike = tmp_path / f".f.bin.{dead_pid()}.notours.tmp"
    for p in (alive, dead, stale, other_target, look_alike):
        p.write_bytes(b"partial")
    old = time.time() - atomic.STALE_AFTER_S - 60
    os.utime(stale, (old, old))

    atomic_write_bytes(tmp_path / "f.bin", b"x")
    assert alive.exists() and other_target.exists() and look_alike.exists()
    assert not dead.exists() and not stale.exists()


def test_symlink_is_kept_and_its_target_replaced(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "data.json"
    real.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(os.path.relpath(real, tmp_path))

    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(real, tmp_path)
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real"]
    assert [p.name for p in real_dir.iterdir()] == ["data.json"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "sub" / "target")
    atomic_write_bytes(link, b"made")
    assert link.is_symlink() and (tmp_path / "sub" / "target").read_bytes() == b"made"


def test_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(tmp_path / "a", b"x")
    assert info.value.errno == errno.ELOOP and info.value.filename == str(tmp_path / "a")


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_existing_permissions_are_kept(tmp_path, mode):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    path.chmod(mode)
    atomic_write_bytes(path, b"new")
    assert path.stat().st_mode & 0o7777 == mode


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, mode):
    path = tmp_path / "new.bin"
    run_python(f"""
        import os
        os.umask({umask:#o})
        from nndl.files.atomic import atomic_write_bytes
        atomic_write_bytes({str(path)!r}, b"x")
    """)
    assert path.stat().st_mode & 0o777 == mode


def test_the_umask_is_never_changed(tmp_path, monkeypatch):
    def no_umask(mask):
        raise AssertionError("os.umask was called")
    monkeypatch.setattr(os, "umask", no_umask)
    atomic_write_bytes(tmp_path / "f", b"x")
    assert (tmp_path / "f").read_bytes() == b"x"


def test_file_and_directory_are_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_bytes(tmp_path / "f", b"x")
    assert synced == ["file", "directory"]


def test_a_real_write_error_names_the_target_not_the_temporary_file(tmp_path):
    """A file-size limit makes write() fail with EFBIG, as a full disk fails with ENOSPC."""
    path = tmp_path / "out.bin"
    out = run_python(f"""
        import os, resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # report EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from nndl.files.atomic import atomic_write_bytes
        try:
            atomic_write_bytes({str(path)!r}, bytes(1 << 20))
        except OSError as e:
            print(type(e).__name__, e.errno, e.filename)
            print(e)
    """)
    kind, number, filename = out.splitlines()[0].split(" ", 2)
    assert (kind, int(number), filename) == ("OutputError", errno.EFBIG, str(path))
    assert ".tmp" not in out
    assert list(tmp_path.iterdir()) == []


def test_disk_full_inside_the_block_is_reported_under_the_target(tmp_path):
    path = tmp_path / "net.npz"
    with pytest.raises(OutputError) as info:
        with atomic_writer(path) as f:
            f.write(b"abc")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(info.value, OSError)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(path))
    assert str(info.value) == f"[Errno {errno.ENOSPC}] No space left on device: '{path}'"
    assert list(tmp_path.iterdir()) == []


def test_other_errors_in_the_block_pass_through(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with atomic_writer(tmp_path / "f"):
            open(tmp_path / "missing-input")
    assert info.value.filename == str(tmp_path / "missing-input")
    with pytest.raises(ValueError, match="mine"):
        with atomic_writer(tmp_path / "f"):
            raise ValueError("mine")
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_names_the_target(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"old")

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src), str(dst))
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(path, b"new")
    assert info.value.filename == str(path) and info.value.errno == errno.EACCES
    assert path.read_bytes() == b"old" and temporaries(tmp_path, "f") == []


def test_a_directory_is_not_replaced(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(tmp_path / "d", b"x")
    assert info.value.errno == errno.EISDIR and info.value.filename == str(tmp_path / "d")
    assert (tmp_path / "d").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError) as info:
            atomic_write_bytes(locked / "f", b"x")
    finally:
        locked.chmod(0o700)
    assert info.value.errno == errno.EACCES and info.value.filename == str(locked / "f")
