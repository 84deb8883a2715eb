"""Building blocks (embeddings, MLP) and the first ranking models."""

from .embed import FeatureEmbedding
from .mlp import MLP
from .models import EmbeddingMLP, LogisticRegression

__all__ = ["FeatureEmbedding", "MLP", "EmbeddingMLP", "LogisticRegression"]
