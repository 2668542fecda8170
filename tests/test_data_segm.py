"""tubelet.data.segm (the one check of a segmentation entry: sizes, polygons) and
tubelet.data.rle_counts (decoding every compressed RLE string)."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tubelet.data.rle_counts import RleCountsCheck, counts_problem, decode_counts
from tubelet.data.segm import (MAX_SIDE, check_frame_size, check_segmentation,
                               check_segmentations)
from tubelet.data.ytvis import load_ytvis, validate_results
from tubelet.errors import InputError


def ref_decode(s: str) -> list[int]:
    """Slow, obviously-correct COCO counts decoder (the loop of pycocotools' rleFrString)."""
    runs, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


def ref_runs(mask: np.ndarray) -> list[int]:
    """Run lengths of a mask in column-major order, starting with a (maybe empty) run of 0s."""
    runs, value, n = [], 0, 0
    for b in mask.flatten(order="F"):
        if b != value:
            runs.append(n)
            value, n = b, 0
        n += 1
    return runs + [n]


def enc(mask) -> dict:
    r = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


# ----------------------------------------------------------------------------- decoding
def test_decoder_matches_references_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(60):
        masks = []
        for _ in range(int(rng.integers(1, 6))):
            h, w = (int(v) for v in rng.integers(1, 70, 2))
            m = rng.random((h, w)) < rng.random()
            if rng.random() < 0.3:  # big runs (several characters, negative deltas)
                m = np.zeros((h, w), bool)
                m[rng.integers(0, h):, rng.integers(0, w):] = True
            masks.append(m)
        strings = [enc(m)["counts"] for m in masks]
        for m, s in zip(masks, strings):
            assert decode_counts(s).tolist() == ref_decode(s) == ref_runs(m)
        check = RleCountsCheck()  # all strings in one vectorised batch
        for m, s in zip(masks, strings):
            check.add(s, m.size, "f.json", "r", "segmentations[0]")
        check.flush()


def test_hand_decoded_strings():
    # '4','2','1','0' are one-character runs 4, 2, 1, 0; the fourth is a delta on the second:
    # runs 4, 2, 1, 2 -> 9 pixels, not the 20 of a 4x5 frame
    assert decode_counts("4210").tolist() == [4, 2, 1, 2]
    assert counts_problem("4210", 20) == "RLE runs sum to 9, expected H*W = 20"
    # 65536 = 2 << 15: groups 0, 0, 0 (each with the "more" bit: 'P') then 2 -> "0PPP2"
    assert decode_counts("0PPP2").tolist() == [0, 65536]
    assert "sum to 65536" in counts_problem("0PPP2", 64 * 96)
    assert counts_problem("0PPP2", 256 * 256) is None
    # a sign bit (0x10) on a first run: '?' = 63 -> group 15 without sign; '@' = 64 -> -16
    assert decode_counts("@").tolist() == [-16]
    assert "negative" in counts_problem("5@", 5)


@pytest.mark.parametrize("counts,needle", [
    ("4210", "sum to 9"),
    ("!!!!garbage~~~~", "not in the RLE alphabet"),
    ("", "empty"),
    ("P", "truncated"),
    ("PPPPPP0", "more than 6 characters"),
    ("5\u00e9", "non-ASCII"),
    ("52@", "negative"),   # runs 5, 2, -16
])
def test_bad_compressed_counts_are_input_errors(counts, needle):
    with pytest.raises(InputError) as e:
        check_segmentation({"size": [4, 5], "counts": counts}, (4, 5), "gt.json",
                           "annotations[3]", "segmentations[1]")
    msg = str(e.value)
    assert needle in msg and "gt.json" in msg and "annotations[3]" in msg \
        and "segmentations[1]" in msg


def test_counts_check_reports_the_first_bad_string_in_order():
    good = enc(np.eye(4, 5))["counts"]
    with pytest.raises(InputError, match=r"r1.*sum to 9"):
        with RleCountsCheck() as check:
            check.add(good, 20, "f", "r0", "a")
            check.add("4210", 20, "f", "r1", "b")
            check.add("!!", 20, "f", "r2", "c")
    # a structural error after a queued bad string: the earlier string is reported
    with pytest.raises(InputError, match="r1"):
        with RleCountsCheck() as check:
            check.add("4210", 20, "f", "r1", "b")
            raise InputError("later problem", "f", "r2")
    check = RleCountsCheck()
    check.add(good, 20, "f", "r0", "a")
    assert good in check.seen(20) and good not in check.seen(30)  # decoded once per H*W


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("size", [[4.5, 5], [4.0, 5], [True, 5], ["4", 5], [4], [0, 5], [-4, 5],
                                  "4x5", None])
def test_rle_size_must_be_two_positive_ints(size):
    with pytest.raises(InputError, match="size"):
        check_segmentation({"size": size, "counts": "0"}, (4, 5), "r.json", "results[0]",
                           "segmentations[0]")


def test_frame_size_limit():
    assert check_frame_size(MAX_SIDE, MAX_SIDE) == (16384, 16384)
    with pytest.raises(InputError, match="exceeds 16384"):
        check_frame_size(16385, 10, "gt.json", "videos[0]", "height/width")
    with pytest.raises(InputError, match="exceeds 16384"):
        check_segmentation({"size": [4, 20000], "counts": "0"}, None)
    with pytest.raises(InputError, match="positive"):
        check_frame_size(4.5, 10)


def test_size_mismatch_names_what_was_expected():
    with pytest.raises(InputError, match="mask size 3x3 differs from video 2 size 4x5"):
        check_segmentations([None, enc(np.ones((3, 3)))], (4, 5), owner="video 2")
    with pytest.raises(InputError, match="has 1 frames, video 2 has 2"):
        check_segmentations([None], (4, 5), length=2, owner="video 2")


# ----------------------------------------------------------------------------- entries
def test_entries_are_normalised_to_compressed_rle():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True  # column-major runs: 5 zeros, 2 ones, 2 zeros, 2 ones, 2 zeros, 2 ones, 5
    want = enc(m)
    unc = {"size": [4, 5], "counts": [5, 2, 2, 2, 2, 2, 5]}
    assert check_segmentation(unc, (4, 5)) == want
    assert check_segmentation({"size": [4, 5], "counts": want["counts"].encode()}, (4, 5)) == want
    assert check_segmentation(want, None) == want  # unknown size: the RLE's own
    assert check_segmentation(None, (4, 5)) is None
    poly = [[1, 1, 4, 1, 4, 3, 1, 3]]  # x in [1, 4], y in [1, 3]: columns 1-3, rows 1-2
    assert mask_utils.decode(check_segmentation(poly, (4, 5))).astype(bool).tolist() == m.tolist()
    assert check_segmentation([], (4, 5)) == enc(np.zeros((4, 5)))


@pytest.mark.parametrize("seg,needle", [
    ({"size": [4, 5], "counts": [5, 2, 2.0, 11]}, "must be ints"),
    ({"size": [4, 5], "counts": [5, -2, 17]}, "negative run"),
    ({"size": [4, 5], "counts": [3, 4]}, "sum to 7"),
    ({"size": [4, 5]}, "needs 'size' and 'counts'"),
    ({"size": [4, 5], "counts": 20}, "string or a list"),
    ([[1, 1, 4, 1, float("nan"), 3]], "non-finite"),
    ([[1, 1, 4, 1, float("inf"), 3]], "non-finite"),
    ([[1, 1, 4, 1, 4]], "odd number"),
    ([[1, 1, "4", 1, 4, 3]], "non-number"),
    ([5], "polygon 0 is a int"),
    ("nonsense", "unknown segmentation type"),
])
def test_bad_entries_are_input_errors(seg, needle):
    with pytest.raises(InputError, match=needle):
        check_segmentation(seg, (4, 5), "a.json", "annotations[0]", "segmentations[2]")


def test_polygons_need_a_size():
    with pytest.raises(InputError, match="polygon masks need the frame size"):
        check_segmentation([[1, 1, 4, 1, 4, 3]], None)


def test_huge_polygons_are_clipped_not_rasterised_whole():
    h, w = 4, 5
    # the whole frame lies inside this triangle: every pixel is set
    tri = check_segmentation([[0, 0, 1e12, 0, 0, 1e12]], (h, w))
    assert mask_utils.decode(tri).all()
    tri = check_segmentation([[-1e300, -1e300, 1e300, -1e300, 0, 1e300]], (h, w))
    assert mask_utils.decode(tri).all()
    # a strip x in [1, 3] from y = 1 down to 1e12: columns 1-2 of rows 1-3, as a strip that
    # ends just below the frame
    strip = mask_utils.decode(check_segmentation([[1, 1, 3, 1, 3, 1e12, 1, 1e12]], (h, w)))
    want = np.zeros((h, w), np.uint8)
    want[1:, 1:3] = 1
    assert strip.tolist() == want.tolist()
    assert mask_utils.decode(check_segmentation([[1, 1, 3, 1, 3, 9, 1, 9]], (h, w))).tolist() \
        == want.tolist()
    far = check_segmentation([[1e12, 1e12, 2e12, 1e12, 2e12, 3e12]], (h, w))  # all outside
    assert mask_utils.decode(far).sum() == 0


def test_polygons_near_the_frame_rasterise_as_pycocotools():
    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        f = max(h, w)  # within one frame size of the frame: no clipping
        k = int(rng.integers(3, 7))
        poly = np.stack([rng.uniform(-f, w + f, k), rng.uniform(-f, h + f, k)], 1)
        poly = [float(v) for v in poly.reshape(-1)]
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))
        assert (mask_utils.decode(check_segmentation([poly], (h, w))) == ref).all()


# ----------------------------------------------------------------------------- loaders
def _gt(seg):
    return {"videos": [{"id": 1, "width": 5, "height": 4, "length": 2},
                       {"id": 2, "width": 5, "height": 4, "length": 1}],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": 7, "video_id": 1, "category_id": 1,
                             "segmentations": [seg, None]},
                            {"id": 8, "video_id": 2, "category_id": 2,
                             "segmentations": [enc(np.ones((4, 5)))]}]}


@pytest.mark.parametrize("seg,needle", [
    ({"size": [4, 5], "counts": "4210"}, "sum to 9"),
    ({"size": [4, 5], "counts": "!!!!garbage~~~~"}, "alphabet"),
    ({"size": [4.5, 5], "counts": "0"}, "positive ints"),
])
def test_ground_truth_and_results_use_the_check(seg, needle):
    where = r"gt\.json: annotations\[0\]: field 'segmentations\[0\]'"
    with pytest.raises(InputError, match=rf"{where}.*{needle}"):
        load_ytvis(_gt(seg), "gt.json")
    gt = load_ytvis(_gt(None))
    recs = [{"video_id": 2, "category_id": 2, "score": 0.5, "segmentations": [None]},
            {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [seg, None]}]
    with pytest.raises(InputError, match=rf"res\.json: results\[1\]: field 'segmentations\[0\]'"):
        validate_results(recs, gt, "res.json")


def test_frame_size_over_limit_in_ground_truth():
    g = _gt(None)
    g["videos"][0]["width"] = 20000
    with pytest.raises(InputError, match=r"videos\[0\].*exceeds 16384"):
        load_ytvis(g, "gt.json")


def test_subset_keeps_order_annotations_and_categories():
    g = _gt(None)
    g["videos"] = g["videos"][::-1]  # file order 2, 1
    ds = load_ytvis(g)
    sub = ds.subset([1, 2])
    assert list(sub.videos) == [2, 1]  # the dataset's order, not the argument's
    assert [a.id for a in ds.subset({1}).annotations] == [7]
    assert ds.subset([2]).categories == {1: "a", 2: "b"}
    assert ds.subset([]).annotations == []
    assert ds.subset([1]).annotations_of(2) == []
    with pytest.raises(InputError, match="unknown video id 3"):
        ds.subset([1, 3])
