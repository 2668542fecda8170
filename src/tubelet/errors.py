"""One exception type for bad user input.

Every loader and command raises :class:`InputError` with the file, the record and the field at
fault, so the CLI can print one clear line and exit non-zero instead of a traceback.
"""
from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: a file, record or field that cannot be used.

    Args:
        message: what is wrong, in words.
        path: the file at fault (if any).
        record: which record inside the file, e.g. ``"annotations[3]"`` or ``"video 17"``.
        field: which field of that record, e.g. ``"segmentations[5]"``.
    """

    def __init__(self, message: str, path: str | None = None, record: str | None = None,
                 field: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.record:
            where.append(self.record)
        if self.field:
            where.append(f"field '{self.field}'")
        return (": ".join(where) + ": " if where else "") + self.message
