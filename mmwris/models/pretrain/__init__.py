from .clip_pretrainer import CLIPPretrainer  # noqa: F401
