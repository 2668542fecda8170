"""``tubelet synth``: write the procedural synthetic VIS benchmark (YouTube-VIS format)."""
from __future__ import annotations

import argparse
import time

from tubelet.cli.main import allow_intermixed
from tubelet.errors import InputError

_LAYOUT = """\
layout:
  OUT_DIR/<split>/JPEGImages/<video_name>/00000.jpg ...
  OUT_DIR/<split>/instances.json   (YouTube-VIS GT, compressed RLE; written last)

presets (videos per split, frames per video, frame size):
  tiny   train 4, valid 2;   4-8 frames;    64x96
  bench  train 300, valid 50; 10-40 frames; 192x320   (default)
  long   valid 1;            2000 frames;   192x320   (e.g. length=200)

--videos N sets every split's count to N. Overrides are key=value on SynthConfig fields,
e.g. max_frames=20 full_occlusion_prob=0.5 splits=train,valid split_videos=10,5.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generate the synthetic VIS benchmark",
        description="Generate a procedural synthetic video instance segmentation dataset.",
        epilog=_LAYOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder")
    p.add_argument("--videos", type=int, default=None, metavar="N",
                   help="videos per split (default: the preset's counts)")
    p.add_argument("--seed", type=int, default=0, help="random seed (>= 0); same seed, same bytes")
    p.add_argument("--preset", default="bench", help="tiny | bench | long (default bench)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SynthConfig overrides")
    p.set_defaults(func=run)
    allow_intermixed(p)


def run(args: argparse.Namespace) -> int:
    from tubelet.data.synth import apply_overrides, preset, write_dataset
    if args.seed < 0:
        raise InputError(f"must be >= 0, got {args.seed}", None, None, "--seed")
    if args.videos is not None and args.videos < 0:
        raise InputError(f"must be >= 0, got {args.videos}", None, None, "--videos")
    from tubelet.utils.fileio import check_output_dir
    check_output_dir(args.out_dir)
    cfg = apply_overrides(preset(args.preset), args.overrides)
    t0 = time.perf_counter()
    paths = write_dataset(args.out_dir, cfg, args.seed, videos=args.videos,
                          progress=not args.no_progress)
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0
