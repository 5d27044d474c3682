from .dist import setup_cpu_distributed, shutdown_distributed
from .io import atomic_write_bytes, atomic_write_json
from .safe_pickle import (RestrictedUnpickler, UnsafePickleError,
                          safe_pickle_load, safe_pickle_loads)
from .set_env import register_all_modules

__all__ = [
    'RestrictedUnpickler', 'UnsafePickleError', 'atomic_write_bytes',
    'atomic_write_json', 'register_all_modules', 'safe_pickle_load',
    'safe_pickle_loads', 'setup_cpu_distributed', 'shutdown_distributed'
]
