"""Building blocks (embeddings, dense inputs, MLP, cross network) and the ranking models."""

from .cross import CrossNetV2
from .dense import DenseInput
from .embed import FeatureEmbedding
from .inputs import ModelInput
from .mlp import MLP
from .norm import ResilientBatchNorm1d, make_resilient
from .models import DCN_STRUCTURES, DCNv2, EmbeddingMLP, LogisticRegression

__all__ = ["FeatureEmbedding", "DenseInput", "ModelInput", "MLP", "CrossNetV2", "EmbeddingMLP",
           "LogisticRegression", "DCNv2", "DCN_STRUCTURES", "ResilientBatchNorm1d",
           "make_resilient"]
