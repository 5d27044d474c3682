from .clip_retrieval_metric import CLIPRetrievalMetric
from .ris_metric import RISMetric

__all__ = ['CLIPRetrievalMetric', 'RISMetric']
