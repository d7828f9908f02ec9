"""Where each stored window is, in memory: clip id -> its window ids, starts and ends, in window order.

Kept beside the FAISS windows index and changed with it, so that scoring a clip's windows for a query asks
the index only for those windows (an ID selector) and reads nothing back from SQLite: a segment or a moment
costs what its clip's matching windows cost, not what the clip's length does; and what the index answers
(window ids) is placed back in its clip's windows by two arrays indexed by window id. About 36 bytes a window.
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
        self._clip_of = np.full(0, -1, np.int64)  # window id -> its clip's id (-1: none held)
        self._n_of = np.zeros(0, np.int32)  # window id -> its place in its clip's windows

    def locate(self, window_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) held window ids -> (N,) their clips' ids and (N,) their places in those clips' windows (the
        index into ClipPlaces' arrays); -1 and 0 for an id not held."""
        ids = np.asarray(window_ids, np.int64)
        inside = (ids >= 0) & (ids < len(self._clip_of))
        at = np.where(inside, ids, 0)
        if not len(self._clip_of):
            return np.full(len(ids), -1, np.int64), np.zeros(len(ids), np.int32)
        return np.where(inside, self._clip_of[at], -1), np.where(inside, self._n_of[at], 0)

    def ids(self) -> np.ndarray:
        """(N,) every window id held, sorted."""
        held = [p.ids for p in self._clips.values()]
        return np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)

    def put(self, clip_id: int, ids: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """A clip's windows (replacing any it had), in window order."""
        self.drop([clip_id])
        places = ClipPlaces(np.asarray(ids, np.int64), np.asarray(starts, np.float64),
                            np.asarray(ends, np.float64))
        self._clips[int(clip_id)] = places
        if len(places.ids):
            top = int(places.ids.max()) + 1
            if top > len(self._clip_of):  # ids only grow: room for twice as many
                grown = max(top, 2 * len(self._clip_of))
                self._clip_of = np.concatenate([self._clip_of, np.full(grown - len(self._clip_of), -1)])
                self._n_of = np.concatenate([self._n_of, np.zeros(grown - len(self._n_of), np.int32)])
            self._clip_of[places.ids] = int(clip_id)
            self._n_of[places.ids] = np.arange(len(places.ids), dtype=np.int32)

    def drop(self, clip_ids: Iterable[int]) -> None:
        for c in clip_ids:
            gone = self._clips.pop(int(c), None)
            if gone is not None:
                self._clip_of[gone.ids] = -1

    def load(self, rows: Rows) -> None:
        """Replace every clip's windows with these rows, ordered by clip id, then n."""
        self._clips = {}
        self._clip_of, self._n_of = np.full(0, -1, np.int64), np.zeros(0, np.int32)
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

