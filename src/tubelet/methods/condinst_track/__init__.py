"""``condinst-track``: CondInst per frame + a tracker (track-by-detect, YOLOv4+1 / IAI baseline)."""
from tubelet.methods.condinst_track.config import CondInstTrackConfig
from tubelet.methods.condinst_track.method import CondInstTrack

__all__ = ["CondInstTrackConfig", "CondInstTrack"]
