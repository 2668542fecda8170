"""Exact, fast YouTube-VIS / OVIS evaluation (video mask AP/AR as the official evaluators).

    from tubelet.eval import evaluate, YTVISEvaluator
"""
from tubelet.eval.params import EvalParams, occlusion_score, OCCLUSION_SCORES
from tubelet.eval.ytvis_eval import (SUMMARY_KEYS, EvalResult, YTVISEvaluator, evaluate,
                                     evaluate_detailed, occlusion_scores)

__all__ = ["evaluate", "evaluate_detailed", "EvalResult", "YTVISEvaluator", "EvalParams",
           "SUMMARY_KEYS", "occlusion_score", "occlusion_scores", "OCCLUSION_SCORES"]
