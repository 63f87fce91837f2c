"""Build the engine's Cython kernels in place.

    python services/engine/setup.py build_ext --inplace -q     (what `make engine` runs)

Every ``services/engine/_core/*.pyx`` becomes an extension module named after
its dotted path (``services.engine._core.<name>``), compiled with the NumPy
headers, ``-O3`` and the directives the kernels are written for (no bounds
checks, no negative indexing, C division). The flags are portable: no
``-march=native`` and, deliberately, no ``-ffast-math`` — the indicator kernels
rely on IEEE evaluation order for their compensated (error-free) summation.
``-fopenmp`` (compile and link) turns the sweep kernel's ``prange`` into threads.
"""

from __future__ import annotations

import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # repo root: services/engine/ -> ./


def _extensions() -> list[Extension]:
    exts = []
    for pyx in sorted(glob.glob(os.path.join(HERE, "_core", "*.pyx"))):
        rel = os.path.relpath(pyx, ROOT)
        name = os.path.splitext(rel)[0].replace(os.sep, ".")
        exts.append(
            Extension(
                name,
                [rel],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=["-O3", "-fno-fast-math", "-fno-finite-math-only", "-fopenmp"],
                # libgomp (gcc's): the sweep kernel's prange over pair chunks
                extra_link_args=["-fopenmp"],
            )
        )
    return exts


if __name__ == "__main__":
    # Paths above are relative to the repo root so the built modules land next to
    # their .pyx files whatever directory the command is started from.
    os.chdir(ROOT)
    if len(sys.argv) == 1:
        sys.argv += ["build_ext", "--inplace"]
    setup(
        name="hindsight-engine-kernels",
        ext_modules=cythonize(
            _extensions(),
            language_level=3,
            quiet=True,
            compiler_directives={
                "boundscheck": False,
                "wraparound": False,
                "cdivision": True,
                "initializedcheck": False,
                "nonecheck": False,
                "embedsignature": True,
            },
        ),
        packages=[],
        py_modules=[],
        zip_safe=False,
    )
