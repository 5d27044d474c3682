"""Reading pickles that come from outside (refer ``refs(*).p`` files)
without running code.

A pickle can name any importable callable and call it while loading (a
record whose ``__reduce__`` returns ``os.system`` runs a command). Refer
pickles hold only lists, dicts, strings and numbers, so
:class:`RestrictedUnpickler` resolves no global except a few harmless
builtins; anything else is refused *before* it is called, with an error
naming the file and the global.
"""
import io
import pickle
from typing import Any, BinaryIO, FrozenSet, Tuple

# (module, name) pairs a plain-data pickle may need: containers and scalars
# that have no opcode of their own, in Python 2 and 3 spellings, and the
# bytes decoder protocol 2 uses.
SAFE_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset({
    ('builtins', 'set'), ('builtins', 'frozenset'), ('builtins', 'complex'),
    ('builtins', 'bytearray'), ('builtins', 'slice'), ('builtins', 'range'),
    ('__builtin__', 'set'), ('__builtin__', 'frozenset'),
    ('__builtin__', 'complex'), ('__builtin__', 'bytearray'),
    ('_codecs', 'encode'),
})


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that plain data never needs."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers and scalars.

    Args:
        file (BinaryIO): The open pickle.
        source (str): The file name, for error messages.
        **kwargs: ``pickle.Unpickler`` options (``encoding='latin1'`` reads
            Python 2 pickles).
    """

    def __init__(self, file: BinaryIO, source: str = '<pickle>',
                 **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f'{self.source} asks to load the Python global "{module}.{name}"; '
            'a data pickle (refer refs file) only holds lists, dicts, '
            'strings and numbers, so it was refused and nothing was run. '
            'Do not use this file, or rebuild it from its source '
            '(e.g. tools/dataset_converters).')

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f'{self.source} uses persistent ids ({pid!r}); refused.')


def safe_pickle_load(path: str, encoding: str = 'latin1') -> Any:
    """Load a plain-data pickle file with :class:`RestrictedUnpickler`."""
    with open(path, 'rb') as f:
        return RestrictedUnpickler(f, source=path, encoding=encoding).load()


def safe_pickle_loads(data: bytes, source: str = '<bytes>',
                      encoding: str = 'latin1') -> Any:
    """:func:`safe_pickle_load` for bytes."""
    return RestrictedUnpickler(io.BytesIO(data), source=source,
                               encoding=encoding).load()
