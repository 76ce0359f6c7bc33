"""Tests for nndl.data.idx: reading and writing the idx format."""

import gzip
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from nndl.data.idx import MAX_BYTES, IdxError, gunzip_if_needed, parse_idx, read_idx, write_idx
from nndl.errors import InputError


def idx_bytes(type_code, shape, body):
    """Hand-built idx bytes, independent of write_idx."""
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    assert not back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary files left


def test_compress_flag_overrides_extension(tmp_path):
    array = np.arange(5, dtype=np.uint8)
    gz = write_idx(tmp_path / "plain-name", array, compress=True)
    plain = write_idx(tmp_path / "x.gz", array, compress=False)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    assert plain.read_bytes()[:4] == b"\x00\x00\x08\x01"
    # Gzip is detected from the content, not the name.
    np.testing.assert_array_equal(read_idx(gz), array)
    np.testing.assert_array_equal(read_idx(plain), array)


def test_reads_hand_built_big_endian_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(0x0B, (3,), struct.pack(">3h", 1, -2, 300)))
    np.testing.assert_array_equal(read_idx(path), [1, -2, 300])
    assert read_idx(path).dtype == np.int16


def test_write_matches_spec_layout(tmp_path):
    path = write_idx(tmp_path / "f", np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert path.read_bytes() == idx_bytes(0x0C, (2, 2), struct.pack(">4i", 1, 2, 3, 4))


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "f.gz"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    write_idx(path, np.ones(4, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.ones(4))


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(InputError, match="int64.*supports only"):
        write_idx(tmp_path / "f", np.arange(3, dtype=np.int64))
    with pytest.raises(InputError, match="0-d"):
        write_idx(tmp_path / "f", np.uint8(3))
    assert list(tmp_path.iterdir()) == []


def test_zero_sized_dimension(tmp_path):
    path = write_idx(tmp_path / "f", np.zeros((0, 28, 28), dtype=np.uint8))
    assert read_idx(path).shape == (0, 28, 28)


def test_truncated(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(idx_bytes(0x08, (2, 3), bytes(5)))
    with pytest.raises(IdxError) as info:
        read_idx(path)
    message = str(info.value)
    assert "short.idx" in message
    assert "is truncated: header promises 6 bytes of data but only 5 are present" in message


def test_truncated_gzipped_content(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x0D, (4,), bytes(12))))
    with pytest.raises(IdxError, match="header promises 16 bytes of data but only 12 are present"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 2))
    with pytest.raises(IdxError, match="is truncated: its header declares 3 dimensions"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(0x08, (2, 3), bytes(9)))
    with pytest.raises(IdxError, match=r"long\.idx.* 3 unexpected trailing bytes.*promises 6 bytes"):
        read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "f.idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(IdxError, match=r"f\.idx.*does not start with an idx magic number.*50 4b 03 04"):
        read_idx(path)


def test_unknown_type_code(tmp_path):
    path = tmp_path / "f.idx"
    path.write_bytes(idx_bytes(0x07, (1,), bytes(1)))
    with pytest.raises(IdxError, match=r"unknown data type code 0x07 \(known codes: 0x08 unsigned byte"):
        read_idx(path)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "f.idx"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(IdxError, match="declares 0 dimensions"):
        read_idx(path)


def test_too_short(tmp_path):
    path = tmp_path / "f.idx"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(IdxError, match="too short to be an idx file: it has 2 bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data[:10] + bytes(b ^ 0xFF for b in data[10:]),  # garbled deflate stream
        lambda data: data[:-8] + bytes(8),  # bad CRC and length
    ],
    ids=["truncated", "garbled", "bad-crc"],
)
def test_corrupt_gzip(tmp_path, damage):
    good = gzip.compress(idx_bytes(0x08, (64,), bytes(range(64))))
    path = tmp_path / "f.gz"
    path.write_bytes(damage(good))
    with pytest.raises(IdxError, match=r"f\.gz.*gzip stream is corrupt or truncated"):
        read_idx(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.idx"
    path.write_bytes(b"")
    with pytest.raises(IdxError, match=r"empty\.idx.* is empty"):
        read_idx(path)


def test_empty_after_decompression(tmp_path):
    path = tmp_path / "empty.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(IdxError, match="is empty"):
        read_idx(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.idx"
    with pytest.raises(FileNotFoundError, match="nope.idx") as info:
        read_idx(path)
    assert info.value.filename == str(path)


def test_parse_idx_is_a_view_for_bytes():
    data = idx_bytes(0x08, (2, 2), bytes([1, 2, 3, 4]))
    array = parse_idx(data)
    assert array.base is not None  # a view on data, not a copy
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])


def test_directory_is_an_idx_error(tmp_path):
    with pytest.raises(IdxError, match="is a directory"):
        read_idx(tmp_path)


def test_absurd_dimensions_in_an_uncompressed_file_are_checked_against_its_length(tmp_path):
    path = tmp_path / "huge.idx"
    path.write_bytes(idx_bytes(0x0E, (2**32 - 1, 2**32 - 1, 2**32 - 1), bytes(8)))
    promised = 8 * (2**32 - 1) ** 3
    with pytest.raises(IdxError, match=rf"huge\.idx.* is truncated: header promises {promised} bytes"):
        read_idx(path)


def test_absurd_dimensions_in_a_compressed_file_are_refused_before_decompressing(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (100_000, 100_000), bytes(10 << 20))))
    with pytest.raises(IdxError, match=r"huge\.gz.* declares shape \(100000, 100000\).*more than the "
                                       r"2,147,483,648 bytes nndl reads"):
        read_idx(path)


def test_max_bytes_is_the_callers_to_set(tmp_path):
    path = write_idx(tmp_path / "f.gz", np.zeros((10, 10), np.uint8))
    assert read_idx(path, max_bytes=112).shape == (10, 10)          # 12 bytes of header, 100 of data
    with pytest.raises(IdxError, match="more than the 111 bytes"):
        read_idx(path, max_bytes=111)
    assert MAX_BYTES == 2**31


def test_truncated_compressed_header(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">I", 2)))
    with pytest.raises(IdxError, match="is truncated: its header declares 3 dimensions"):
        read_idx(path)


def test_trailing_bytes_in_compressed_content(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (2, 3), bytes(9))))
    with pytest.raises(IdxError, match="3 unexpected trailing bytes"):
        read_idx(path)


def test_multi_member_gzip_and_zero_padding(tmp_path):
    content = idx_bytes(0x08, (6,), bytes(range(6)))
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(content[:7]) + gzip.compress(content[7:]) + bytes(100))
    np.testing.assert_array_equal(read_idx(path), range(6))


def test_garbage_after_the_gzip_stream(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(0x08, (3,), bytes(3))) + b"garbage")
    with pytest.raises(IdxError, match="gzip stream is corrupt or truncated"):
        read_idx(path)


def test_gunzip_if_needed(tmp_path):
    content = idx_bytes(0x08, (3,), bytes(3))
    assert gunzip_if_needed(content) is content
    assert gunzip_if_needed(gzip.compress(content)) == content
    with pytest.raises(IdxError, match="11 bytes in all, more than the 10 bytes"):
        gunzip_if_needed(gzip.compress(content), "x", max_bytes=10)


# ---------------------------------------------------------------------------
# A gzip bomb: 4.6 MB that inflates to 1 GB
# ---------------------------------------------------------------------------

BOMB_IMAGES = 10


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory):
    """An idx header declaring 10 images of 28x28, followed by 1 GiB of zeros, gzipped (level 1: 4.6 MB).

    Built by streaming zeros through a compressor, 1 MiB at a time.
    """
    path = tmp_path_factory.mktemp("bomb") / "train-images-idx3-ubyte.gz"
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(compressor.compress(idx_bytes(0x08, (BOMB_IMAGES, 28, 28), b"")))
        for _ in range(1024):
            f.write(compressor.compress(zeros))
        f.write(compressor.flush())
    return path


def test_gzip_bomb_is_refused_early_without_inflating_it(gzip_bomb):
    assert gzip_bomb.stat().st_size < 5_000_000
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(IdxError, match=r"decompresses to more than its header declares \(7,840 bytes of data"):
            read_idx(gzip_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak:,} bytes"
    assert time.perf_counter() - start < 2


def test_gzip_bomb_in_memory_is_refused_too(gzip_bomb):
    data = gzip_bomb.read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match="decompresses to more than its header declares"):
            gunzip_if_needed(data, gzip_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak:,} bytes"


def test_gzip_bomb_peak_resident_memory(gzip_bomb):
    """The whole process, measured by the kernel: reading the bomb adds next to nothing to its peak."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import resource
        from nndl.data.idx import IdxError, read_idx
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_idx({str(gzip_bomb)!r})
        except IdxError:
            pass
        print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)], capture_output=True, text=True, check=True, timeout=60).stdout
    before, after = map(int, out.split())
    assert after - before < 16 * 1024, f"peak RSS grew by {after - before} KiB"      # ru_maxrss is in KiB


def test_a_named_pipe_or_a_link_loop_is_refused_without_waiting(tmp_path):
    import os

    from nndl.data.idx import read_file_bytes
    from nndl.errors import IdxError
    fifo, loop = tmp_path / "fifo", tmp_path / "loop"
    os.mkfifo(fifo)
    os.symlink(loop, loop)
    with pytest.raises(IdxError, match="not a regular file"):
        read_file_bytes(fifo)
    with pytest.raises(IdxError, match="symbolic links"):
        read_file_bytes(loop)
