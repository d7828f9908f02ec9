"""Where each stored window is, in memory: clip id -> its window ids, starts and ends, in window order.

Kept beside the FAISS windows index and changed with it, so that scoring a clip's windows for a query asks
the index only for those windows (an ID selector) and reads nothing back from SQLite: a segment or a moment
costs what its clip's matching windows cost, not what the clip's length does. About 24 bytes a window.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClipPlaces:
    ids: np.ndarray  # (W,) int64 window ids, in window order (n = 0, 1, ...)
    starts: np.ndarray  # (W,) seconds
    ends: np.ndarray  # (W,) seconds


Rows = Iterable[tuple[int, int, int, float, float]]  # (window id, clip id, n, start, end)


class WindowPlaces:
    """Not thread-safe by itself: the store changes it where it changes the windows index."""

    def __init__(self) -> None:
        self._clips: dict[int, ClipPlaces] = {}

    def ids(self) -> np.ndarray:
        """(N,) every window id held, sorted."""
        held = [p.ids for p in self._clips.values()]
        return np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)

    def put(self, clip_id: int, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """A clip's windows (replacing any it had), in window order."""
        self._clips[int(clip_id)] = ClipPlaces(np.asarray(ids, np.int64), np.asarray(starts, np.float64),
                                               np.asarray(ends, np.float64))

    def drop(self, clip_ids: Iterable[int]) -> None:
        for c in clip_ids:
            self._clips.pop(int(c), None)

    def load(self, rows: Rows) -> None:
        """Replace every clip's windows with these rows, ordered by clip id, then n."""
        self._clips = {}
        self._put_rows(rows)

    def catch_up(self, db_ids: np.ndarray, *, clips_of: Callable[[np.ndarray], Iterable[int]],
                 rows_of: Callable[[Sequence[int]], Rows]) -> None:
        """Bring the map to the window ids SQLite holds now (`db_ids`, sorted): the clips that lost a window
        or gained one (`clips_of(window ids)`) are read again with `rows_of(clip ids)` (rows ordered by clip
        id, then n)."""
        held = self.ids()
        gone = np.setdiff1d(held, db_ids, assume_unique=True)
        new = np.setdiff1d(db_ids, held, assume_unique=True)
        if not len(gone) and not len(new):
            return
        stale = [c for c, p in self._clips.items() if np.isin(p.ids, gone, assume_unique=True).any()]
        self.drop(stale)
        changed = set(stale)
        if len(new):
            changed.update(int(c) for c in clips_of(new))
        self._put_rows(rows_of(sorted(changed)))

    def _put_rows(self, rows: Rows) -> None:
        current, found = None, []  # type: ignore[var-annotated]
        for row in rows:
            if row[1] != current and found:
                self._put_found(current, found)
                found = []
            current = row[1]
            found.append(row)
        if found:
            self._put_found(current, found)

    def _put_found(self, clip_id, found: list) -> None:
        self.put(clip_id, np.array([r[0] for r in found], np.int64), np.array([r[3] for r in found]),
                 np.array([r[4] for r in found]))

    def of(self, clip_ids: Sequence[int]) -> dict[int, ClipPlaces]:
        """The windows of the clips among `clip_ids` that have any."""
        return {int(c): p for c in clip_ids if (p := self._clips.get(int(c))) is not None}

