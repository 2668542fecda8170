"""bench/ap_breakdown.py on a hand-made case: a perfect mask with the wrong class, a perfect one
with the right class ranked below it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ap_breakdown  # noqa: E402

from tubelet.data.ytvis import load_results, load_ytvis  # noqa: E402
from tubelet.eval import evaluate  # noqa: E402


def _rle(cols: slice) -> dict:
    m = np.zeros((4, 4), dtype=np.uint8)
    m[:, cols] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": r["size"], "counts": r["counts"].decode()}


def _case(tmp_path: Path):
    left, right = _rle(slice(0, 2)), _rle(slice(2, 4))
    gt = {"videos": [{"id": 1, "width": 4, "height": 4, "length": 1,
                      "file_names": ["v/00000.jpg"]}],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [
              {"id": 1, "video_id": 1, "category_id": 1, "segmentations": [left],
               "areas": [8], "iscrowd": 0},
              {"id": 2, "video_id": 1, "category_id": 2, "segmentations": [right],
               "areas": [8], "iscrowd": 0}]}
    res = [{"video_id": 1, "category_id": 2, "score": 0.9, "segmentations": [left]},  # wrong class
           {"video_id": 1, "category_id": 2, "score": 0.8, "segmentations": [right]}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(res))
    g = load_ytvis(str(tmp_path / "gt.json"))
    return g, load_results(str(tmp_path / "res.json"), g)


def test_class_agnostic_and_oracle_by_hand(tmp_path):
    gt, res = _case(tmp_path)
    # official: category a has no result (AP 0); in category b the wrong-class record ranks first
    # (a false positive), then the true positive: precision 1/2 at every recall -> AP 0.5
    assert abs(evaluate(gt, res)["AP"] - 0.25) < 1e-12
    # one category: both records are perfect matches -> AP 1
    agn_gt, agn_res = ap_breakdown.one_category(gt, res)
    assert abs(evaluate(agn_gt, agn_res)["AP"] - 1.0) < 1e-12
    assert [a.category_id for a in gt.annotations] == [1, 2]  # the input is not modified
    rows = {r["gt_id"]: r for r in ap_breakdown.oracle(gt, res)}
    assert rows[1]["iou_any"] == 1.0 and rows[1]["rank_any"] == 0
    assert rows[1]["iou_same"] == 0.0 and rows[1]["rank_same"] == -1  # no result of class a
    assert rows[2]["iou_any"] == 1.0 and rows[2]["rank_any"] == 1
    assert rows[2]["iou_same"] == 1.0 and rows[2]["rank_same"] == 1
    s = ap_breakdown.summary(list(rows.values()))
    assert s["any"]["share_iou_ge_0.5"] == 1.0 and s["same"]["share_iou_ge_0.5"] == 0.5
