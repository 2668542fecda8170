"""Video IO (streaming and random access) and overlay rendering.

    from tubelet.video import open_video, VideoWriter, draw_overlay
    with open_video("clip.mp4") as src, VideoWriter("out.mp4", src.fps, src.width, src.height) as w:
        for frame in src:                      # [H, W, 3] uint8 RGB, one at a time
            w.write(frame)
        last = src[-1]                         # random access: len(src), src[t], cached decode

``as_video(x)`` turns a path, a list / ``[T, H, W, 3]`` array of frames or an iterable of frames
into a :class:`VideoSource`.
"""
from tubelet.video.cache import DEFAULT_CACHE_SIZE, FrameCache
from tubelet.video.memory import ArrayVideo, IterableVideo, as_video
from tubelet.video.reader import (DEFAULT_FOLDER_FPS, YTVIS_FPS, DatasetVideo, FrameFolderSource,
                                  VideoFileSource, VideoSource, open_video)
from tubelet.video.render import (color_for_track, draw_overlay, id_png, palette, render_video)
from tubelet.video.writer import VideoWriter

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_FOLDER_FPS", "YTVIS_FPS", "ArrayVideo", "DatasetVideo",
           "FrameCache", "FrameFolderSource", "IterableVideo", "VideoFileSource", "VideoSource",
           "as_video", "open_video", "VideoWriter", "color_for_track", "draw_overlay", "id_png",
           "palette", "render_video"]
