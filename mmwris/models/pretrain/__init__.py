from .sam_pretrainer import SAMPretrainer  # noqa: F401
from .clip_pretrainer import CLIPPretrainer  # noqa: F401
