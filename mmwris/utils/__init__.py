from .dist import setup_cpu_distributed
from .io import atomic_write_bytes, atomic_write_json
from .set_env import register_all_modules

__all__ = [
    'atomic_write_bytes', 'atomic_write_json', 'register_all_modules',
    'setup_cpu_distributed'
]
