"""VIS methods, one folder each. Importing this package registers every method."""
from tubelet.methods import condinst_track  # noqa: F401
