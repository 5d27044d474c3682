from .clip import (CLIPTextEncoder, CLIPVisionEncoder, build_open_clip,
                   load_clip_weights)

__all__ = [
    'CLIPTextEncoder', 'CLIPVisionEncoder', 'build_open_clip',
    'load_clip_weights'
]
