"""Accuracy evaluators for search candidates (see :mod:`tinynas.evaluators.base`)."""

from tinynas.evaluators.base import (BaseEvaluator, EvaluationContext, evaluator_class, make_evaluator,
                                     register_evaluator)

__all__ = ["BaseEvaluator", "EvaluationContext", "evaluator_class", "make_evaluator", "register_evaluator"]
