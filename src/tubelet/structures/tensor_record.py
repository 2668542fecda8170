"""A dataclass mixin for records whose fields are tensors of one leading length N."""
from __future__ import annotations

from dataclasses import fields, replace


class TensorRecord:
    """Mixin for ``@dataclass`` records of ``[N, ...]`` tensor fields (``None`` allowed):
    ``len(rec)`` is N (from the first tensor field), ``rec[idx]`` indexes every field together,
    ``rec.to(device)`` moves every field."""

    def _tensors(self):
        return [(f.name, getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not None and hasattr(getattr(self, f.name), "shape")]

    def __len__(self) -> int:
        return int(self._tensors()[0][1].shape[0])

    def __getitem__(self, idx):
        return replace(self, **{n: t[idx] for n, t in self._tensors()})

    def to(self, device):
        return replace(self, **{n: t.to(device) for n, t in self._tensors()})
