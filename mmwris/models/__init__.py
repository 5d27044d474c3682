from .segmentors import *  # noqa: F401,F403
