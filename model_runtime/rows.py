"""Array-likes read on demand (numpy only): long tracks and their log-mel are never held whole.

A subclass has `__len__` (rows), `shape` and `read(a, b)`; slicing `x[a:b]` reads just those rows,
and `np.asarray(x)` reads everything (tests and short inputs only).
"""

import numpy as np


class LazyRows:
    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(len(self))
            return self.read(a, max(a, b))
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        x = self.read(0, len(self))
        return x if dtype is None else x.astype(dtype, copy=False)

    def read(self, a: int, b: int) -> np.ndarray:
        raise NotImplementedError


class RowsOf(LazyRows):
    """`n` rows made by `read(a, b)` when sliced."""

    def __init__(self, n: int, read):
        self.n, self._read = int(n), read

    def __len__(self):
        return self.n

    def read(self, a: int, b: int) -> np.ndarray:
        return self._read(a, b)
