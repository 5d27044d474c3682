"""Crash-safe file writing shared by the long-running tools."""
import json
import os
from typing import Any


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary name, then rename: never a half file."""
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str, obj: Any, **dump_kwargs) -> None:
    """Serialise ``obj`` as JSON and write it with :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, json.dumps(obj, **dump_kwargs).encode('utf-8'))
