"""Named errors raised by the library; the service maps them to HTTP responses at its edge."""

import errno
import sqlite3
from pathlib import PurePath


class RetrievalError(Exception):
    """Base class of every error this project raises on purpose."""


class AudioDecodeError(RetrievalError):
    """The input could not be turned into audio samples (not audio, truncated, empty, non-finite...)."""


class AudioTooLong(AudioDecodeError):
    """The audio is longer than the configured maximum duration."""


class TooManyChannels(AudioDecodeError):
    """The audio has more channels than the configured maximum."""


class StorageFull(RetrievalError):
    """The disk (or SQLite's page limit) is full; what was being written was rolled back, nothing stored."""


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left; this user's quota spent


def disk_full(error: BaseException) -> bool:
    """Whether `error` says there is no room to write: StorageFull, a write's ENOSPC or EDQUOT, or SQLite's
    SQLITE_FULL (its "database or disk is full")."""
    if isinstance(error, StorageFull):
        return True
    if isinstance(error, OSError):
        return error.errno in FULL_ERRNOS
    return isinstance(error, sqlite3.OperationalError) and (
        getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(error))


class CheckpointMismatch(RetrievalError):
    """A checkpoint, feature file or index was made with other models than the ones it is used with."""


class ModelNotFound(RetrievalError):
    """A model's weights are not where the configuration says they are."""


class WeightsMismatch(RetrievalError):
    """Fetched or copied weights do not match their pinned size or sha256; nothing was installed."""


class FetchFailed(RetrievalError):
    """Weights could not be downloaded or assembled from their source."""


class ClipNotFound(RetrievalError):
    """A request names clips the collection does not hold; the message names them."""


class DeviceUnavailable(RetrievalError):
    """The device asked for (RETRIEVAL_DEVICE, a training config's) is not one this machine has."""


class ZeroQuery(RetrievalError):
    """A composite query's parts cancel out: its weighted sum has no direction to search in."""


class StoreClosed(RetrievalError):
    """A collection (its store) was used after it was closed: open it again."""


class NewerFormat(RetrievalError):
    """A file written by a newer version of this project (a store's database, the upload queue): this one
    would misread it, and its writes would leave what the newer one keeps inconsistent."""


def newer_format(path, version: int, known: int) -> NewerFormat:
    """The refusal of `path`, of format `version`, by this version, which knows formats up to `known`."""
    return NewerFormat(f"{path} was written by a newer version of retrieval (format {version}; this one "
                       f"knows up to {known}): run the version that wrote it, or restore a backup taken "
                       "before the upgrade")


def refuse_one_for_many(value: object, one: type | tuple[type, ...], many: str) -> None:
    """TypeError when `value`, meant as a list of `many`, is one of them (an instance of `one`): a string's
    letters, or a path's, would be taken one by one (`remove("10")` removed clips 1 and 0)."""
    if isinstance(value, one):
        kind = {str: "string", int: "integer"}.get(type(value), "path" if isinstance(value, PurePath) else
                                                   type(value).__name__)
        raise TypeError(f"{many} are a list, not one {kind}: [{value!r}]")
