"""Decode-check compressed COCO RLE ``counts`` strings, vectorised over many strings at once.

pycocotools checks none of what makes a string valid: a string whose runs sum to less than H*W
decodes to a mask with uninitialised pixels, and its area / IoU functions return numbers for any
string at all. :class:`RleCountsCheck` decodes every string tubelet loads (characters of the
COCO alphabet ``'0'..'o'``, no unfinished run, no negative run, runs summing to H*W); used by
:mod:`tubelet.data.segm`, which checks the rest of a segmentation entry.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tubelet.errors import InputError

MAX_TOTAL = 1 << 28  # pixels of the largest frame (16384^2): keeps the int32 decoding exact
MAX_RUN_CHARS = 6  # a run (or delta) up to 2^28 needs 30 bits with the sign: 6 characters
_BATCH_CHARS = 1 << 18  # decode once this many characters wait (arrays stay in cache)


class RleCountsCheck:
    """Decode-checks compressed RLE ``counts`` strings, many at a time.

    ``add`` queues a string (skipping one already checked for the same H*W); ``flush`` decodes
    the queue in one vectorised pass and raises an :class:`InputError` for the first bad string,
    in the order they were added. Used as a context manager, it flushes on leaving the block,
    also when an InputError leaves it: a bad string queued before that error is reported instead,
    so errors come out in file order.
    """

    def __init__(self, batch_chars: int = _BATCH_CHARS):
        self.batch_chars = batch_chars
        self._seen: dict[int, set[str]] = {}  # H*W -> strings checked or queued
        self._pending: list[tuple[str, int, tuple]] = []  # (counts, H*W, (path, record, field))
        self._chars = 0

    def seen(self, total: int) -> set[str]:
        """The strings already checked (or queued) for masks of ``total`` pixels."""
        return self._seen.setdefault(total, set())

    def add(self, counts: str, total: int, path: str | None, record: str | None,
            fld: str | None) -> None:
        """Queue ``counts`` of a mask with ``total`` = H*W pixels; errors will name the place."""
        if not 0 < total <= MAX_TOTAL:
            raise ValueError(f"a mask of {total} pixels is outside (0, {MAX_TOTAL}]")
        seen = self.seen(total)
        if counts in seen:
            return
        seen.add(counts)
        self._pending.append((counts, total, (path, record, fld)))
        self._chars += len(counts)
        if self._chars >= self.batch_chars:
            self.flush()

    def flush(self) -> None:
        pending, self._pending, self._chars = self._pending, [], 0
        if not pending or _runs_ok([p[0] for p in pending], [p[1] for p in pending]):
            return
        for counts, total, where in pending:  # rare: find the first bad string, in order
            problem = counts_problem(counts, total)
            if problem is not None:
                raise InputError(f"unreadable mask: {problem}", *where)

    def __enter__(self) -> RleCountsCheck:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None or issubclass(exc_type, InputError):
            self.flush()
        return False


# ----------------------------------------------------------------------------- compressed counts
class _Malformed(ValueError):
    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index  # which string of the batch


def _decode_batch(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode COCO compressed counts strings (as pycocotools' ``rleFrString``), all at once.

    Each run is written in 5-bit groups, least significant first, one character (``48 + group``,
    bit 0x20 set while more groups follow, bit 0x10 of the last group the sign); from the fourth
    run on, a run is stored as its difference to the run two before it.

    Speed (it runs on every mask tubelet loads): about a dozen passes of uint8/int32 numpy
    arithmetic, none per run or per string in Python; the few runs longer than one character
    are assembled apart; the delta coding of all strings is undone by one cumulative sum per
    parity, restarted at each string's start. About 10 ms per million characters.

    int32 may wrap on garbage, but a string passes only if every run is in [0, H*W] with
    H*W <= MAX_TOTAL = 2^28, and then no partial sum wrapped: each is the previous (valid) one
    plus a delta with |d| < 2^29, which stays inside int32.

    Returns:
        runs ``[M]`` int32 (all strings' runs, in order) and first ``[n]``, the index of each
        string's first run (every string has at least one).
    Raises:
        _Malformed: empty string, a character outside '0'..'o', a run of more than
        MAX_RUN_CHARS characters or an unfinished last run; ``index`` names the string.
    """
    n = len(strings)
    lengths = np.fromiter(map(len, strings), np.int64, n)              # [n]
    if lengths.min() == 0:
        raise _Malformed(int(np.argmin(lengths)), "empty 'counts'")
    str_end = np.cumsum(lengths) - 1                                    # [n] last char index
    joined = "".join(strings)
    try:
        c = np.frombuffer(joined.encode("ascii"), np.uint8)             # [L]
    except UnicodeEncodeError as exc:
        raise _Malformed(int(np.searchsorted(str_end, exc.start)),
                         f"non-ASCII character {joined[exc.start]!r} in 'counts'") from None
    if c.min() < 48 or c.max() > 111:
        p = int(np.flatnonzero((c < 48) | (c > 111))[0])
        raise _Malformed(int(np.searchsorted(str_end, p)),
                         f"character {chr(c[p])!r} in 'counts' is not in the RLE alphabet '0'..'o'")
    last = c < 80                                                       # [L] ends a run (no 0x20)
    if not last[str_end].all():
        raise _Malformed(int(np.argmin(last[str_end])), "'counts' ends inside a run (truncated)")
    top = c[last] - np.uint8(48)                                        # [M] last group of a run
    x = ((top ^ np.uint8(0x10)).view(np.int8) - np.int8(0x10)).astype(np.int32)  # 0x10 = sign
    cont = np.flatnonzero(~last)                                        # [K] continuation chars
    first = str_end + 1 - np.searchsorted(cont, str_end)                # [n] runs up to string end
    first = np.concatenate(([0], first[:-1]))                           # [n] first run of string
    if len(cont):  # runs of several characters: shift in the less significant groups
        end = cont[last[cont + 1]] + 1                                  # [R] their last character
        r = end - np.searchsorted(cont, end)                            # [R] their run index
        xr, sel, j = x[r], np.arange(len(r)), 1
        while len(sel):
            if j >= MAX_RUN_CHARS:
                raise _Malformed(int(np.searchsorted(str_end, end[sel[0]])),
                                 f"a run of more than {MAX_RUN_CHARS} characters in 'counts'")
            xr[sel] = (xr[sel] << 5) | (c[end[sel] - j].astype(np.int32) - 80)  # 80 = 48 + 0x20
            j += 1
            sel = sel[c[end[sel] - j] >= 80]
        x[r] = xr
    # Undo the delta coding: run m >= 3 adds run m - 2. Per string, run m of it is a running sum
    # over the runs 1, 3, .., m (m odd) or 2, 4, .., m (m even >= 2); run 0 stands alone. With
    # g = first + m, both are a cumulative sum over the global positions of g's parity, from
    # first + 1 on. One cumulative sum per parity does all strings: at each string's first
    # chain position the sum of everything before it (since the previous one) is taken out.
    runs = np.empty_like(x)
    x0 = x[first]                                                       # run 0 of each string
    stop = np.append(first[1:], len(x))                                 # [n] end of each string
    for par in (0, 1):
        xs = x[par::2]                                                  # [M/2] view of one parity
        start = first + 1 + ((first + 1) % 2 != par)                    # [n] first chain position
        idx = (start[start < stop] - par) // 2                          # [n'] its index in xs
        if len(idx):
            seg = np.add.reduceat(xs, np.concatenate(([0], idx)), dtype=np.int32)  # [n' + 1]
            if idx[0] == 0:  # reduceat gives xs[0] for an empty leading segment
                seg[0] = 0
            xs[idx] -= seg[:-1]  # in place: these positions are read by nothing else
        np.cumsum(xs, dtype=np.int32, out=runs[par::2])
    runs[first] = x0
    return runs, first


def _runs_ok(strings: Sequence[str], totals: Sequence[int]) -> bool:
    """True when every string decodes to non-negative runs summing to its total."""
    try:
        runs, first = _decode_batch(strings)
    except _Malformed:
        return False
    if runs.min() < 0:
        return False
    sums = np.add.reduceat(runs, first, dtype=np.int64)
    return bool((sums == np.asarray(totals, dtype=np.int64)).all())


def decode_counts(counts: str) -> np.ndarray:
    """The runs ``[M]`` of one compressed counts string; ValueError if malformed. (Exact for
    valid strings; on garbage a run may have wrapped, see :func:`_decode_batch`.)"""
    return _decode_batch([counts])[0]


def counts_problem(counts: str, total: int) -> str | None:
    """What is wrong with compressed ``counts`` of a mask of ``total`` = H*W pixels, or None."""
    try:
        runs = decode_counts(counts)
    except _Malformed as exc:
        return str(exc)
    if runs.min() < 0:
        j = int(np.argmin(runs))
        return f"run {j} of 'counts' is negative ({int(runs[j])})"
    s = int(runs.sum(dtype=np.int64))
    if s != total:
        return f"RLE runs sum to {s}, expected H*W = {total}"
    return None
