"""Is this file the official MNIST file? Its SHA-256, of the ``.gz`` or of the uncompressed content.

A file named like an MNIST file passes if it is the official ``.gz`` (by its
SHA-256) or if its uncompressed content is the official content (an unzipped
or re-zipped copy: the gzip bytes differ with the compressor, the content
does not). Anything else is refused with both expected checksums and what
was found, so that a corrupt download or a different data set under MNIST's
names (Fashion-MNIST) is never trained on as MNIST.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nndl.data.idx import GZIP_MAGIC, IdxError, gunzip_if_needed, read_file_bytes
from nndl.errors import ChecksumError

__all__ = ["GZ_SHA256", "RAW_SHA256", "verified_content"]

#: SHA-256 of the official gzip files, keyed by the file name as downloaded.
GZ_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: SHA-256 of the decompressed content of the official files, keyed by the name without ``.gz``.
RAW_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: The size of each official file's uncompressed content: a 16-byte header and 60,000 or 10,000 images of
#: 28x28, or an 8-byte header and one byte per label. No file larger than this can be (a copy of) the official one.
_OFFICIAL_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}


def verified_content(path: Path, name: str) -> bytes | bytearray:
    """The uncompressed content of ``path``, checked to be the official MNIST file ``name``.

    The file passes if it is the official ``.gz`` (by its SHA-256) or if its
    uncompressed content is the official content (an unzipped or re-zipped
    copy). Neither can be larger than the official content, so a larger
    file is refused unread, and a gzip stream is decompressed no further
    than that size.

    Raises
    ------
    ChecksumError
        On a mismatch, with both expected checksums and what was found.
    """
    official_size = _OFFICIAL_SIZES[name]
    size = path.stat().st_size
    if size > official_size:
        raise _mismatch(path, name, f"a file of {size:,} bytes, more than the official {official_size:,}")
    raw = read_file_bytes(path)
    is_gzip = raw[:2] == GZIP_MAGIC
    file_sha = hashlib.sha256(raw).hexdigest()
    if is_gzip and file_sha == GZ_SHA256.get(name + ".gz"):
        return gunzip_if_needed(raw, path)

    content_sha = None
    problem = ""
    content = raw
    if is_gzip:
        try:
            content = gunzip_if_needed(raw, path, max_bytes=official_size)
            content_sha = hashlib.sha256(content).hexdigest()
        except IdxError as exc:
            problem = f" Also, it cannot be read: {exc}."
    else:
        content_sha = file_sha
    if content_sha is not None and content_sha == RAW_SHA256.get(name):
        return content
    got = file_sha if content_sha in (None, file_sha) else f"{file_sha} (uncompressed content: {content_sha})"
    raise _mismatch(path, name, got, problem)


def _mismatch(path: Path, name: str, got: str, problem: str = "") -> ChecksumError:
    """The error for a file named like the official ``name`` that is not it."""
    return ChecksumError(
        f"{path} is named like the MNIST file {name} but its checksum does not match "
        f"(expected SHA-256 {GZ_SHA256.get(name + '.gz')} for the .gz file or {RAW_SHA256.get(name)} for its "
        f"uncompressed content, got {got}).{problem} It may be corrupt (delete it and download it "
        "again) or it may be a different dataset. To load a different dataset in "
        "the same idx layout (such as Fashion-MNIST), use "
        "nndl.data.mnist.load_idx_dataset(directory, validation_size=...)."
    )
