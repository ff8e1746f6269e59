"""ODIN: a reward model with response length disentangled from quality (Chen et al., 2024, arXiv 2402.07319).

Importing the package registers the ODIN classes with transformers' Auto classes (see odin_rm/modeling.py).
"""

from odin_rm.modeling import (
    HEAD_NAMES,
    OdinConfig,
    OdinForSequenceClassification,
    odin_from_backbone,
    register_auto_classes,
)

register_auto_classes()

__all__ = ["HEAD_NAMES", "OdinConfig", "OdinForSequenceClassification", "odin_from_backbone"]
