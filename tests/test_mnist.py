"""Tests for nndl.data.mnist and the modules behind it (locate, download, verify, splits): finding,
downloading, verifying and loading idx data sets.

Most tests use tiny synthetic data sets written into tmp_path.  Tests marked
``mnist`` use the real MNIST files and are skipped when they cannot be found
(via $NNDL_DATA, then <repo>/../shared/data/mnist).
"""

import contextlib
import dataclasses
import errno
import functools
import gzip
import hashlib
import http.server
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import real_mnist_dir

from nndl.data import locate, mnist, verify
from nndl.data.idx import IdxError, write_idx
from nndl.data.mnist import (
    FILES,
    ChecksumError,
    DataNotFoundError,
    DatasetError,
    DownloadError,
    MnistData,
    Split,
    download_mnist,
    find_mnist,
    load_idx_dataset,
    load_mnist,
)
from nndl.errors import ConfigError, InputError, OutputError
from nndl.files import atomic

N_TRAIN, N_TEST, SIDE = 12, 5, 4


def make_dataset(directory, *, gz=True, names=None, n_train=N_TRAIN, n_test=N_TEST, seed=0, **override):
    """Write a synthetic 4-file idx data set into ``directory``; return the arrays by role.

    ``override`` replaces the array for a role (e.g. ``test_labels=...``).
    """
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, SIDE, SIDE), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, SIDE, SIDE), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    arrays.update(override)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = names or FILES
    for role, array in arrays.items():
        write_idx(directory / (names[role] + (".gz" if gz else "")), array)
    return arrays


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# Loading synthetic data sets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_dataset(tmp_path, gz):
    arrays = make_dataset(tmp_path, gz=gz)
    data = load_idx_dataset(tmp_path, validation_size=3)

    assert isinstance(data, MnistData)
    assert data.source == tmp_path
    training, validation, test = data
    assert (len(training), len(validation), len(test)) == (9, 3, 5)
    for split in data:
        assert split.images.dtype == np.float32
        assert split.images.shape == (len(split), SIDE * SIDE)
        assert split.labels.dtype == np.int64
        assert split.labels.shape == (len(split),)
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0

    flat = arrays["train_images"].reshape(N_TRAIN, -1)
    np.testing.assert_array_equal(training.images, flat[:9] / np.float32(255))
    np.testing.assert_array_equal(validation.images, flat[9:] / np.float32(255))
    np.testing.assert_array_equal(training.labels, arrays["train_labels"][:9])
    np.testing.assert_array_equal(validation.labels, arrays["train_labels"][9:])
    np.testing.assert_array_equal(test.images * 255, arrays["test_images"].reshape(N_TEST, -1))
    np.testing.assert_array_equal(test.labels, arrays["test_labels"])


def test_pixel_scaling_is_exact(tmp_path):
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 4, 4)
    make_dataset(tmp_path, train_images=pixels, train_labels=np.zeros(16, np.uint8))
    images = load_idx_dataset(tmp_path, validation_size=0).training.images
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(images.ravel(), np.arange(256, dtype=np.float32) / np.float32(255))


def test_variant_file_names(tmp_path):
    variants = {role: name.replace("-idx", ".idx") for role, name in FILES.items()}
    assert variants["train_images"] == "train-images.idx3-ubyte"
    make_dataset(tmp_path, gz=False, names=variants)
    data = load_idx_dataset(tmp_path, validation_size=2)
    assert len(data.training) == 10


def test_gz_preferred_when_both_exist(tmp_path):
    make_dataset(tmp_path, gz=True, seed=1)
    make_dataset(tmp_path, gz=False, seed=2)
    expected = make_dataset(tmp_path / "copy", gz=True, seed=1)
    data = load_idx_dataset(tmp_path, validation_size=2)
    np.testing.assert_array_equal(data.test.labels, expected["test_labels"])


def test_validation_size_zero(tmp_path):
    make_dataset(tmp_path)
    data = load_idx_dataset(tmp_path, validation_size=0)
    assert (len(data.training), len(data.validation)) == (N_TRAIN, 0)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train_labels": np.zeros(11, np.uint8)}, "12 train images but 11 train labels"),
        ({"test_images": np.zeros((5, 16), np.uint8)}, "test images .* should be a 3-d uint8 array"),
        ({"train_images": np.zeros((12, 4, 4), np.int32)}, "train images .* 3-d uint8 .* got 3-d int32"),
        ({"test_labels": np.zeros((5, 1), np.uint8)}, "test labels .* should be 1-d"),
        ({"test_labels": np.zeros(5, np.float32)}, "test labels .* should be integers"),
        ({"train_labels": np.full(12, -1, np.int8)}, "train labels .* negative"),
        ({"test_images": np.zeros((5, 3, 3), np.uint8)},
         r"training images .* are \(4, 4\) but test images are \(3, 3\)"),
    ],
    ids=["count", "not-3d", "not-uint8", "labels-2d", "labels-float", "negative", "image-size"],
)
def test_structural_errors(tmp_path, override, message):
    make_dataset(tmp_path, **override)
    with pytest.raises(DatasetError, match=message):
        load_idx_dataset(tmp_path, validation_size=2)


def test_validation_size_leaving_no_training_data(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(DatasetError, match="validation_size=12 would leave the training split empty.* only 12"):
        load_idx_dataset(tmp_path, validation_size=12)


def test_validation_size_too_large(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(ConfigError, match="validation_size=13 is more than the 12 training images"):
        load_idx_dataset(tmp_path, validation_size=13)


@pytest.mark.parametrize("size, match", [(-1, "at least 0, got -1"), ("3", "whole number, got '3'"),
                                         (True, "whole number"), (2.0, "whole number")])
def test_validation_size_refused_before_reading(tmp_path, size, match):
    with pytest.raises(ConfigError, match=match):
        load_idx_dataset(tmp_path / "does-not-exist", validation_size=size)


@pytest.mark.parametrize("override, match", [
    ({"test_images": np.zeros((0, 4, 4), np.uint8), "test_labels": np.zeros(0, np.uint8)},
     "0 test images"),
    ({"train_images": np.zeros((0, 4, 4), np.uint8), "train_labels": np.zeros(0, np.uint8)}, "0 training"),
    ({"train_images": np.zeros((12, 0, 4), np.uint8), "test_images": np.zeros((5, 0, 4), np.uint8)},
     "have no pixels"),
])
def test_empty_splits_are_data_errors(tmp_path, override, match):
    make_dataset(tmp_path, **override)
    with pytest.raises(DatasetError, match=match):
        load_idx_dataset(tmp_path, validation_size=0)


def test_load_idx_dataset_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_idx_dataset(tmp_path / "nowhere")
    make_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match=r"missing t10k-labels-idx1-ubyte\(\.gz\)"):
        load_idx_dataset(tmp_path, validation_size=2)


def test_bad_idx_file_in_dataset(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IdxError, match="train-labels-idx1-ubyte.gz"):
        load_idx_dataset(tmp_path, validation_size=2)


def test_split_checks_and_is_frozen():
    with pytest.raises(InputError, match="3 images but 2 labels"):
        Split(np.zeros((3, 4), np.float32), np.zeros(2, np.int64))
    split = Split(np.zeros((3, 4), np.float32), np.zeros(3, np.int64))
    assert len(split) == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        split.labels = np.zeros(3)


# ---------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No NNDL_DATA, a fresh working directory, and the cache dir inside tmp_path."""
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cache = tmp_path / "cache" / "mnist"
    monkeypatch.setattr(locate, "cache_dir", lambda: cache)
    return {"cwd": cwd, "local": cwd / "data" / "mnist", "cache": cache, "root": tmp_path}


def test_search_order(isolated, monkeypatch):
    explicit = isolated["root"] / "explicit"
    env = isolated["root"] / "env"
    for directory in (explicit, env, isolated["local"], isolated["cache"]):
        make_dataset(directory)
    monkeypatch.setenv(mnist.ENV_VAR, str(env))

    assert find_mnist(explicit) == explicit
    assert find_mnist(str(explicit)) == explicit
    assert find_mnist() == env
    monkeypatch.delenv(mnist.ENV_VAR)
    assert find_mnist().resolve() == isolated["local"].resolve()
    (isolated["local"] / "train-images-idx3-ubyte.gz").unlink()
    assert find_mnist() == isolated["cache"]


def test_env_without_files_falls_through(isolated, monkeypatch):
    make_dataset(isolated["local"])
    empty = isolated["root"] / "empty"
    empty.mkdir()
    monkeypatch.setenv(mnist.ENV_VAR, str(empty))
    assert find_mnist().resolve() == isolated["local"].resolve()


def test_explicit_path_without_files_raises_at_once(isolated, monkeypatch):
    make_dataset(isolated["cache"])
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated["cache"]))
    wrong = isolated["root"] / "wrong"
    with pytest.raises(DataNotFoundError) as info:
        find_mnist(wrong)
    assert info.value.places == [(f"{wrong} (the directory you gave)", "does not exist")]
    with pytest.raises(DataNotFoundError, match="the directory you gave"):
        load_mnist(wrong)  # download=True does not override an explicit path


def test_not_found_lists_every_place(isolated, monkeypatch):
    env = isolated["root"] / "env-dir"
    monkeypatch.setenv(mnist.ENV_VAR, str(env))
    make_dataset(isolated["local"])
    (isolated["local"] / "t10k-labels-idx1-ubyte.gz").unlink()
    (isolated["local"] / "train-images-idx3-ubyte.gz").unlink()
    file_not_dir = isolated["cache"]
    file_not_dir.parent.mkdir(parents=True)
    file_not_dir.write_text("")

    with pytest.raises(DataNotFoundError) as info:
        find_mnist()
    error = info.value
    assert isinstance(error, FileNotFoundError)
    message = str(error)
    assert [why for _, why in error.places] == [
        "does not exist",
        "is missing train-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)",
        "is not a directory",
    ]
    assert f"{env} (from $NNDL_DATA): does not exist" in message
    assert str(isolated["local"]) in message
    assert "missing train-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)" in message
    assert f"{file_not_dir} (user cache): is not a directory" in message
    assert "--data DIR" in message and "NNDL_DATA" in message and "download=True" in message


def test_not_found_mentions_unset_env(isolated):
    with pytest.raises(DataNotFoundError) as info:
        find_mnist()
    assert info.value.places[0] == ("$NNDL_DATA", "not set")
    assert len(info.value.places) == 3


def test_load_mnist_without_download(isolated):
    with pytest.raises(DataNotFoundError, match="MNIST data not found"):
        load_mnist(download=False)
    assert not isolated["cache"].exists()


def test_cache_dir_default():
    path = mnist.cache_dir()
    assert path.name == "mnist" and path.parent.name.lower() == "nndl"


# ---------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------


def test_checksum_mismatch_for_mnist_named_file(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(ChecksumError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "train-images-idx3-ubyte.gz is named like the MNIST file train-images-idx3-ubyte" in message
    assert "checksum does not match" in message
    assert mnist.GZ_SHA256["train-images-idx3-ubyte.gz"] in message
    assert mnist.RAW_SHA256["train-images-idx3-ubyte"] in message
    assert f"got {sha256(tmp_path / 'train-images-idx3-ubyte.gz')}" in message
    assert "corrupt" in message and "different dataset" in message and "load_idx_dataset" in message
    # The same files load fine as a generic idx data set (the Fashion-MNIST case).
    assert len(load_idx_dataset(tmp_path, validation_size=2).test) == N_TEST


def test_checksum_mismatch_for_corrupt_gzip(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ChecksumError, match="checksum does not match.*cannot be read.*corrupt or truncated"):
        load_mnist(tmp_path, download=False)


@pytest.mark.parametrize("gz", [True, False])
def test_matching_checksums_then_mnist_structure_checked(tmp_path, monkeypatch, gz):
    """With checksum tables for the synthetic files, verification passes (for the
    .gz files, and for uncompressed copies through the content checksums), and the
    MNIST shape check then rejects the tiny data set."""
    make_dataset(tmp_path / "gz", gz=True)
    make_dataset(tmp_path / "plain", gz=False)
    for name in FILES.values():
        monkeypatch.setitem(mnist.GZ_SHA256, name + ".gz", sha256(tmp_path / "gz" / (name + ".gz")))
        monkeypatch.setitem(mnist.RAW_SHA256, name, sha256(tmp_path / "plain" / name))
    directory = tmp_path / ("gz" if gz else "plain")
    with pytest.raises(DatasetError, match=r"has shape \(12, 4, 4\), expected \(60000, 28, 28\)"):
        load_mnist(directory, download=False)


def test_file_larger_than_the_official_one_is_refused_unread(tmp_path, monkeypatch):
    make_dataset(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with open(path, "r+b") as f:
        f.truncate(50_000_000)                               # sparse: no disk space used
    read = []
    monkeypatch.setattr(verify, "read_file_bytes", lambda p: read.append(p) or Path(p).read_bytes())
    with pytest.raises(ChecksumError, match="got a file of 50,000,000 bytes, more than the official 10,008"):
        verify.verified_content(path, "t10k-labels-idx1-ubyte")
    assert read == []


def test_compressed_file_named_like_mnist_is_decompressed_no_further_than_the_official_size(tmp_path):
    make_dataset(tmp_path)
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 10**8)     # "100 million labels"
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + bytes(2000)))
    with pytest.raises(ChecksumError, match="cannot be read: .* more than the 10,008 bytes"):
        verify.verified_content(tmp_path / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte")


def test_regzipped_copy_recognised_by_content(tmp_path, monkeypatch):
    make_dataset(tmp_path / "plain", gz=False)
    for name in FILES.values():
        monkeypatch.setitem(mnist.RAW_SHA256, name, sha256(tmp_path / "plain" / name))
        content = (tmp_path / "plain" / name).read_bytes()
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(content, compresslevel=1))
    with pytest.raises(DatasetError, match="expected"):  # past the checksums
        load_mnist(tmp_path, download=False)


# ---------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/"served"; yields its base URL."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Handler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield {
            "url": f"http://127.0.0.1:{httpd.server_address[1]}/",
            "dir": served,
            "requests": httpd.requests,
        }
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


def served_checksums(server):
    arrays = make_dataset(server["dir"])
    checksums = {name + ".gz": sha256(server["dir"] / (name + ".gz")) for name in FILES.values()}
    return arrays, checksums


def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def test_download_with_failing_mirrors_first(tmp_path, server, dead_url):
    arrays, checksums = served_checksums(server)
    target = tmp_path / "downloaded"
    mirrors = [dead_url, server["url"] + "missing/", server["url"]]
    result = download_mnist(target, mirrors=mirrors, checksums=checksums, progress=False, timeout=5)

    assert result == target
    for name in FILES.values():
        assert sha256(target / (name + ".gz")) == checksums[name + ".gz"]
    assert leftovers(target) == []
    # The 404 mirror was tried once; after that the working mirror goes first.
    assert server["requests"] == ["/missing/train-images-idx3-ubyte.gz"] + [
        f"/{name}.gz" for name in FILES.values()
    ]
    data = load_idx_dataset(target, validation_size=2)
    np.testing.assert_array_equal(data.test.labels, arrays["test_labels"])


def test_download_skips_verified_files(tmp_path, server):
    _, checksums = served_checksums(server)
    download_mnist(tmp_path / "d", mirrors=[server["url"]], checksums=checksums, progress=False)
    server["requests"].clear()
    download_mnist(tmp_path / "d", mirrors=[], checksums=checksums, progress=False)
    assert server["requests"] == []


def test_download_replaces_bad_existing_file(tmp_path, server):
    _, checksums = served_checksums(server)
    target = tmp_path / "d"
    target.mkdir()
    (target / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    download_mnist(target, mirrors=[server["url"]], checksums=checksums, progress=False)
    assert sha256(target / "t10k-labels-idx1-ubyte.gz") == checksums["t10k-labels-idx1-ubyte.gz"]


def test_download_checksum_mismatch_leaves_no_file(tmp_path, server):
    _, checksums = served_checksums(server)
    checksums["train-labels-idx1-ubyte.gz"] = "0" * 64
    target = tmp_path / "d"
    with pytest.raises(DownloadError) as info:
        download_mnist(target, mirrors=[server["url"]], checksums=checksums, progress=False)
    message = str(info.value)
    assert "could not download train-labels-idx1-ubyte.gz" in message
    assert server["url"] + "train-labels-idx1-ubyte.gz: checksum mismatch: expected SHA-256 " + "0" * 64 in message
    assert not (target / "train-labels-idx1-ubyte.gz").exists()
    assert leftovers(target) == []
    # The file before it was verified and kept.
    assert (target / "train-images-idx3-ubyte.gz").exists()


def test_download_all_mirrors_fail(tmp_path, server, dead_url):
    mirrors = [dead_url, server["url"] + "nothing-here"]
    with pytest.raises(DownloadError) as info:
        download_mnist(tmp_path / "d", mirrors=mirrors, checksums=mnist.GZ_SHA256, progress=False, timeout=5)
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert f"{dead_url}train-images-idx3-ubyte.gz: could not connect" in message
    assert f"{server['url']}nothing-here/train-images-idx3-ubyte.gz: HTTP 404" in message
    assert "--data DIR" in message
    assert leftovers(tmp_path / "d") == []


def test_download_progress_bar_on_stderr(tmp_path, server, capsys):
    _, checksums = served_checksums(server)
    download_mnist(tmp_path / "d", mirrors=[server["url"]], checksums=checksums, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "t10k-labels-idx1-ubyte.gz: " in captured.err and "B/s" in captured.err


def test_download_says_what_it_is_fetching_from_where(tmp_path, server, capsys):
    """One line per attempt on stderr, always; the bar only on a terminal (capsys is not one)."""
    _, checksums = served_checksums(server)
    download_mnist(tmp_path / "d", mirrors=[server["url"] + "missing/", server["url"]], checksums=checksums)
    lines = capsys.readouterr().err.splitlines()
    first = f"downloading train-images-idx3-ubyte.gz from {server['url']}missing/train-images-idx3-ubyte.gz ..."
    assert lines == [first] + [f"downloading {name}.gz from {server['url']}{name}.gz ..." for name in FILES.values()]


def test_missing_checksum_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no checksum given for t10k-labels-idx1-ubyte.gz"):
        download_mnist(tmp_path, mirrors=[], checksums={k: v for k, v in mnist.GZ_SHA256.items()
                                                        if not k.startswith("t10k-labels")})


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Promises a megabyte, then sends nothing (stall) or one byte every 50 ms (trickle)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        try:
            while not self.server.stop.wait(0.05):
                if self.server.trickle:
                    self.wfile.write(b"x")
                    self.wfile.flush()
        except OSError:
            pass                                             # the client gave up


@pytest.fixture(params=["stall", "trickle"])
def slow_url(request, monkeypatch):
    """The base URL of a server that never finishes a response."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    httpd.daemon_threads = True
    httpd.stop, httpd.trickle = threading.Event(), request.param == "trickle"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_overall_time_limit_ends_a_download_that_never_finishes(tmp_path, slow_url, server, request):
    """The socket timeout (5 s) never fires against a trickle; the overall limit (0.3 s) does, per mirror."""
    _, checksums = served_checksums(server)
    target = tmp_path / "d"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_mnist(target, mirrors=[slow_url, slow_url + "again/"], checksums=checksums, progress=False,
                       timeout=5, time_limit=0.3)
    elapsed = time.monotonic() - start
    assert 0.6 <= elapsed < 3, elapsed
    message = str(info.value)
    # Against a stall the socket timeout (capped at the limit) and the limit end the wait at the same moment,
    # and either may say so first; against a trickle only the overall limit can.
    stall = request.node.callspec.params["slow_url"] == "stall"
    said = ["took longer than the time limit of 0.3 s"] + (["no answer within 0.3 s"] if stall else [])
    for mirror in (slow_url, slow_url + "again/"):
        assert any(f"{mirror}train-images-idx3-ubyte.gz: {words}" in message for words in said), message
    assert leftovers(target) == []                           # the abandoned transfer writes nothing more
    time.sleep(0.2)
    assert leftovers(target) == []


def test_a_full_disk_during_a_download_is_not_blamed_on_the_mirror(tmp_path, server, monkeypatch):
    _, checksums = served_checksums(server)

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    @contextlib.contextmanager
    def writer(path):
        with atomic.atomic_writer(path) as f:
            yield FullDisk(f)
    monkeypatch.setattr("nndl.data.download.atomic_writer", writer)
    target = tmp_path / "d"
    with pytest.raises(OutputError) as info:
        download_mnist(target, mirrors=[server["url"], server["url"] + "other/"], checksums=checksums,
                       progress=False)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(target / "train-images-idx3-ubyte.gz")
    assert server["requests"] == ["/train-images-idx3-ubyte.gz"]        # no other mirror tried
    assert leftovers(target) == []


def test_load_mnist_download_failure_reports_both(isolated, monkeypatch, dead_url):
    monkeypatch.setattr(mnist, "DEFAULT_MIRRORS", (dead_url,))
    with pytest.raises(DownloadError) as info:
        load_mnist(progress=False)
    message = str(info.value)
    assert dead_url in message and "MNIST data not found" in message
    assert str(isolated["cache"]) in message


# ---------------------------------------------------------------------------
# The real MNIST files
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dir():
    directory = real_mnist_dir()
    if directory is None:
        pytest.skip("real MNIST files not found (set NNDL_DATA to their directory)")
    return directory


@pytest.fixture(scope="module")
def real_mnist(real_dir):
    return load_mnist(real_dir, download=False, progress=False)


@pytest.mark.mnist
def test_real_mnist_splits(real_mnist):
    training, validation, test = real_mnist
    assert (len(training), len(validation), len(test)) == (50_000, 10_000, 10_000)
    for split in real_mnist:
        assert split.images.dtype == np.float32
        assert split.images.shape == (len(split), 784)
        assert split.labels.dtype == np.int64
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        assert set(np.unique(split.labels)) == set(range(10))
    assert training.labels[0] == 5
    assert validation.labels[0] == 3
    assert test.labels[0] == 7


def _real_content(real_dir, name):
    path = locate.locate_file(real_dir, name)
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


@pytest.mark.mnist
def test_real_mnist_unzipped_copy_recognised(real_dir, real_mnist, tmp_path):
    """Uncompressed copies of the official files pass the checksum check too."""
    assert real_mnist.source == real_dir
    for name in FILES.values():
        (tmp_path / name).write_bytes(_real_content(real_dir, name))
    data = load_mnist(tmp_path, download=False)
    assert data.source == tmp_path
    np.testing.assert_array_equal(data.test.labels, real_mnist.test.labels)
    np.testing.assert_array_equal(data.validation.images[-1], real_mnist.validation.images[-1])


@pytest.mark.mnist
def test_real_mnist_tampered_copy_rejected(real_dir, tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        source = locate.locate_file(real_dir, name)
        (tmp_path / source.name).symlink_to(source.resolve())
    content = bytearray(_real_content(real_dir, "t10k-labels-idx1-ubyte"))
    content[-1] = (content[-1] + 1) % 10  # still a valid idx file, one label changed
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(content))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte is named like the MNIST file"):
        load_mnist(tmp_path, download=False)
