"""Streaming video IO and overlay rendering.

    from tubelet.video import open_video, VideoWriter, draw_overlay
    with open_video("clip.mp4") as src, VideoWriter("out.mp4", src.fps, src.width, src.height) as w:
        for frame in src:                      # [H, W, 3] uint8 RGB, one at a time
            w.write(frame)
"""
from tubelet.video.reader import (DEFAULT_FOLDER_FPS, FrameFolderSource, VideoFileSource,
                                  VideoSource, open_video)
from tubelet.video.render import (color_for_track, draw_overlay, id_png, palette, render_video)
from tubelet.video.writer import VideoWriter

__all__ = ["DEFAULT_FOLDER_FPS", "FrameFolderSource", "VideoFileSource", "VideoSource",
           "open_video", "VideoWriter", "color_for_track", "draw_overlay", "id_png", "palette",
           "render_video"]
