"""The errors nndl raises for problems a person can fix.

Every one derives from ``NndlError``. The command line turns exactly these
(and missing or unreadable files) into one line and exit status 2; anything
else is a bug and shows its traceback. Each class also derives from the
built-in exception it refines (``ValueError``, ``OSError``,
``FileNotFoundError``), so ``except ValueError`` keeps working.

    NndlError
    +-- ConfigError        settings that cannot work: eta <= 0, an unknown cost, sizes [784]
    +-- InputError         arrays that do not fit: wrong shapes, pixels in 0..255, labels out of range
    +-- DataError          a data set that cannot be used
    |   +-- IdxError           a malformed idx file
    |   +-- ChecksumError      a file that is not the official MNIST file it claims to be
    +-- DataNotFoundError  the data is nowhere nndl looked (also a FileNotFoundError)
    +-- DownloadError      a download failed or took too long (also an OSError)
    +-- FileFormatError    a file nndl wrote (model, history, expanded set) that is malformed or newer
    |   +-- ModelFileError
    +-- OutputError        an output path that cannot be written (checked before training starts)
    +-- MissingDependencyError  an optional part (PyTorch for chapter 6) is not installed (also an ImportError)

``nndl.deep.distributed.DistributedError`` (an NndlError and a RuntimeError) is
raised there, beside the PyTorch code it needs: a peer that crashed, hung or
never joined a run of several processes.
"""

__all__ = ["NndlError", "ConfigError", "InputError", "DataError", "IdxError", "ChecksumError",
           "DataNotFoundError", "DownloadError", "FileFormatError", "ModelFileError", "OutputError",
           "MissingDependencyError"]


class NndlError(Exception):
    """A problem with the user's input, files or settings, reported in plain words."""


class ConfigError(NndlError, ValueError):
    """Settings that cannot work (a non-positive learning rate, an unknown cost, ...)."""


class InputError(NndlError, ValueError):
    """Arrays that do not fit the network or the task: shapes, value ranges, labels."""


class DataError(NndlError, ValueError):
    """A data set or data file that cannot be used."""


class IdxError(DataError):
    """A malformed or truncated idx file."""


class ChecksumError(DataError):
    """A file whose contents are not those of the official file it is named after."""


class DataNotFoundError(NndlError, FileNotFoundError):
    """The data files are in none of the places nndl looked.

    Attributes
    ----------
    places : list of (str, str)
        Every place looked, with the reason it did not qualify.
    """

    def __init__(self, message, places=None):
        super().__init__(message)
        self.places = list(places or [])

    def __str__(self):
        return self.args[0]


class DownloadError(NndlError, OSError):
    """A download that failed, was refused, or took too long."""


class FileFormatError(NndlError, ValueError):
    """A file of nndl's own (model, history, expanded data) that is malformed, or from a newer nndl."""


class ModelFileError(FileFormatError):
    """A model file that cannot be loaded."""


class OutputError(NndlError, OSError):
    """An output path that cannot be written."""


class MissingDependencyError(NndlError, ImportError):
    """An optional dependency is not installed (PyTorch, for the convolutional networks of chapter 6)."""
