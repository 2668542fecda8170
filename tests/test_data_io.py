import json

import numpy as np

from tests.conftest import run_cli
from tubelet.data.clips import ClipConfig, ClipDataset, collate_clips, sample_frames
from tubelet.data.davis import import_davis
from tubelet.data.split import split_by_video
from tubelet.data.transforms import ClipAugConfig, masks_to_boxes
from tubelet.data.ytvis import load_results, load_ytvis, save_results
from tubelet.structures import rle

import torch
from PIL import Image


def small_gt(h=4, w=5):
    m = np.zeros((h, w), np.uint8)
    m[1:3, 1:4] = 1
    comp = rle.encode(m)
    # uncompressed RLE of the same mask, column-major: col0: 4 zeros; cols1-3: 1 zero 2 ones 1 zero
    unc = {"size": [h, w], "counts": [5, 2, 2, 2, 2, 2, 5]}
    poly = [[1.0, 1.0, 3.0, 1.0, 3.0, 2.0, 1.0, 2.0]]
    return {
        "videos": [{"id": 1, "width": w, "height": h, "length": 3,
                    "file_names": ["a/0.jpg", "a/1.jpg", "a/2.jpg"]}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 5, "segmentations": [comp, None, unc],
             "areas": [6.0, None, 6.0], "iscrowd": 0, "bboxes": [None, None, None]},
            {"id": 2, "video_id": 1, "category_id": 9, "segmentations": [None, poly, None],
             "iscrowd": 1, "occlusion": [None, 1, None]},
        ]}, m


def test_load_ytvis_formats():
    data, m = small_gt()
    gt = load_ytvis(data)
    a1, a2 = gt.annotations
    assert np.array_equal(rle.decode(a1.segmentations[2]), m)  # uncompressed RLE decoded right
    assert a1.segmentations[1] is None and a1.areas == [6.0, None, 6.0]
    assert a2.iscrowd == 1 and a2.occlusion == [None, 1, None]
    assert a2.areas[1] == rle.area(a2.segmentations[1]) > 0  # areas derived when missing
    assert gt.videos[1].name == "a" and gt.categories == {5: "cat", 9: "dog"}


def test_results_roundtrip(tmp_path):
    data, m = small_gt()
    gt = load_ytvis(data)
    recs = [{"video_id": 1, "category_id": 5, "score": 0.5,
             "segmentations": [rle.encode(m), None, rle.encode(m)]},
            {"video_id": 1, "category_id": 77, "score": 0.5, "segmentations": [None] * 3}]
    save_results(tmp_path / "r.json", recs)
    back = load_results(tmp_path / "r.json", gt)
    assert len(back) == 1  # unknown category dropped, as the official evaluator does
    assert back[0]["segmentations"][0] == rle.encode(m)


def test_import_davis_real(davis_root, tmp_path):
    data = import_davis(davis_root, ["dog", "camel"])
    gt = load_ytvis(data)
    names = {v.name: v for v in gt.videos.values()}
    assert set(names) == {"dog", "camel"}
    dog = names["dog"]
    assert (dog.length, dog.width, dog.height) == (60, 854, 480)
    ann = gt.annotations_of(dog.id)[0]
    png = np.asarray(Image.open(davis_root / "Annotations/480p/dog/00017.png").convert("L")) > 0
    assert np.array_equal(rle.decode(ann.segmentations[17]).astype(bool), png)


def test_import_davis_palette(tmp_path):
    root = tmp_path / "d"
    (root / "JPEGImages" / "s").mkdir(parents=True)
    (root / "Annotations" / "s").mkdir(parents=True)
    for t in range(2):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / f"JPEGImages/s/{t:05d}.jpg")
        idx = np.zeros((6, 8), np.uint8)
        idx[0:2, 0:2] = 1
        if t == 1:
            idx[3:5, 4:8] = 2  # object 2 appears in frame 1 only
        im = Image.fromarray(idx, mode="P")
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        im.save(root / f"Annotations/s/{t:05d}.png")
    gt = load_ytvis(import_davis(root))
    assert len(gt.annotations) == 2
    a2 = [a for a in gt.annotations if a.segmentations[0] is None][0]
    assert rle.area(a2.segmentations[1]) == 8


def test_split_reproducible_and_disjoint():
    data = {"videos": [{"id": i, "width": 2, "height": 2, "length": 1} for i in range(1, 21)],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"id": i, "video_id": i, "category_id": 1, "segmentations": [None]}
                            for i in range(1, 21)]}
    tr, va = split_by_video(data, 0.2, seed=3)
    tr2, va2 = split_by_video(data, 0.2, seed=3)
    assert tr == tr2 and va == va2
    ids_tr = {v["id"] for v in tr["videos"]}
    ids_va = {v["id"] for v in va["videos"]}
    assert len(ids_va) == 4 and not ids_tr & ids_va and len(ids_tr | ids_va) == 20
    assert {a["video_id"] for a in va["annotations"]} == ids_va
    _, va3 = split_by_video(data, 0.2, seed=4)
    assert {v["id"] for v in va3["videos"]} != ids_va


def test_split_cli(tmp_path):
    data, _ = small_gt()
    data["videos"].append({**data["videos"][0], "id": 2})
    (tmp_path / "gt.json").write_text(json.dumps(data))
    r = run_cli("split", tmp_path / "gt.json", "--val-fraction", "0.5", "--seed", "0")
    assert r.returncode == 0, r.stderr
    va = json.loads((tmp_path / "gt_valid_sub.json").read_text())
    assert len(va["videos"]) == 1


def test_sample_frames_ordered_and_in_range():
    rng = np.random.default_rng(0)
    for length in (1, 2, 5, 40):
        for _ in range(50):
            f = sample_frames(length, 5, (1, 3), rng)
            assert len(f) == 5 and all(0 <= x < length for x in f)
            assert all(b >= a for a, b in zip(f, f[1:]))
            if length >= 13:
                gaps = np.diff(f)
                assert gaps.min() >= 1 and gaps.max() <= 3


def test_masks_to_boxes_reference():
    rng = np.random.default_rng(2)
    m = torch.from_numpy(rng.random((6, 9, 11)) < 0.05)
    m[0] = False
    got = masks_to_boxes(m)
    for i in range(6):
        ys, xs = np.nonzero(m[i].numpy())
        exp = [0, 0, 0, 0] if len(xs) == 0 else [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert got[i].tolist() == [float(x) for x in exp]


def test_clip_dataset_davis(davis_root):
    gt = load_ytvis(import_davis(davis_root, ["dog", "cows"]))
    cfg = ClipConfig(num_frames=3, gap_range=(1, 3), aug=ClipAugConfig(short_sides=(64, 96),
                                                                       hflip_prob=0.5))
    ds = ClipDataset(gt, davis_root / "JPEGImages/480p", cfg, seed=1)
    a, b = ds[0], ds[0]
    assert torch.equal(a["images"], b["images"]) and a["frames"] == b["frames"]  # pure in (seed, epoch, idx)
    assert a["images"].dtype == torch.uint8 and a["images"].shape[0] == 3
    assert min(a["images"].shape[-2:]) in (64, 96)
    for t in a["targets"]:
        assert t["masks"].shape[-2:] == a["images"].shape[-2:]
        assert t["labels"].tolist() == [0] * len(t["labels"])
    firsts = [t["first"].tolist() for t in a["targets"]]
    assert firsts[0] == [True] and all(f == [False] for f in firsts[1:])
    before = [tuple(ds[i]["frames"]) for i in range(2)]
    ds.set_epoch(1)
    after = [tuple(ds[i]["frames"]) for i in range(2)]
    ds.set_epoch(2)
    after2 = [tuple(ds[i]["frames"]) for i in range(2)]
    assert before != after or before != after2  # the epoch enters the draw
    batch = collate_clips([ds[0], ds[1]])
    assert batch["images"].shape[:3] == (2, 3, 3)
    h0, w0 = batch["image_sizes"][0]
    assert not batch["images"][0, :, :, h0:, :].any() and not batch["images"][0, :, :, :, w0:].any()
