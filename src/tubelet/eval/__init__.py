"""Exact, fast YouTube-VIS / OVIS evaluation (video mask AP/AR as the official evaluators).

    from tubelet.eval import evaluate, YTVISEvaluator
    stats = evaluate(gt, load_results("results.json", gt))   # {"AP": ..., "per_category": ...}
"""
from tubelet.eval.params import OCCLUSION_SCORES, EvalParams, occlusion_score
from tubelet.eval.report import format_report, summary_lines
from tubelet.eval.ytvis_eval import (SUMMARY_KEYS, EvalResult, YTVISEvaluator, evaluate,
                                     evaluate_detailed)

__all__ = ["evaluate", "evaluate_detailed", "EvalResult", "YTVISEvaluator", "EvalParams",
           "SUMMARY_KEYS", "occlusion_score", "OCCLUSION_SCORES",
           "format_report", "summary_lines"]
