from .dist import setup_cpu_distributed
from .set_env import register_all_modules

__all__ = ['register_all_modules', 'setup_cpu_distributed']
