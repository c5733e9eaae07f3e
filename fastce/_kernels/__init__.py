"""fastce's compiled kernels (see _runtime.pyx, simd_impl.h).

Run from a source checkout after `pip install .` (the README's
`python -m fastce` in the clone), Python finds this source directory first
and it holds no built extensions; the kernels are then taken from the
installed copy of this package further down sys.path.
"""
import importlib.machinery as _machinery
import os as _os
import sys as _sys


def _has_built_kernels(directory):
    try:
        names = _os.listdir(directory)
    except OSError:
        return False
    return any(n.startswith("_runtime") and n.endswith(tuple(_machinery.EXTENSION_SUFFIXES))
               for n in names)


_here = _os.path.realpath(_os.path.dirname(__file__))
if not _has_built_kernels(_here):
    for _entry in _sys.path:
        _candidate = _os.path.realpath(_os.path.join(_entry or _os.getcwd(), "fastce", "_kernels"))
        if _candidate != _here and _has_built_kernels(_candidate):
            __path__.append(_candidate)
            break
