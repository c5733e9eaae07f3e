"""Build fastce's Cython kernels.

OpenMP is used when the compiler can build and link a program with
``-fopenmp``; otherwise (or with FASTCE_NO_OPENMP=1) the kernels are built
serial and ``fastce.show_config()`` says so.  No flag here changes IEEE
semantics: -fno-math-errno and -fno-trapping-math only let gcc vectorise
the exp/log polynomials (no -ffast-math: inf/NaN handling must survive), and
-ffp-contract=off keeps gcc from fusing a*b+c on its own, so the only FMAs
are the ones simd_impl.h writes and every code path rounds alike.
The SIMD variants for AVX2 and AVX-512 are selected inside simd.c with
`#pragma GCC target`, so the build itself targets the baseline ISA.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

BASE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
              "-fopenmp-simd",
              "-Wno-unused-function"]
KERNELS = "fastce/_kernels"


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compiler_accepts(compiler, flags, link_flags):
    """Compile and link a tiny OpenMP program with ``compiler``'s command."""
    code = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        cc = compiler.compiler_so[0] if hasattr(compiler, "compiler_so") else "cc"
        out = os.path.join(tmp, "probe")
        res = subprocess.run([cc, *flags, src, "-o", out, *link_flags],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return res.returncode == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        unix = self.compiler.compiler_type == "unix"
        want_openmp = not _env_flag("FASTCE_NO_OPENMP")
        openmp = want_openmp and unix and _compiler_accepts(
            self.compiler, ["-fopenmp"], ["-fopenmp"])
        compile_flags = list(BASE_FLAGS) if unix else ["/O2"]
        link_flags = []
        if openmp:
            compile_flags.append("-fopenmp")
            link_flags.append("-fopenmp")
        shown = " ".join(compile_flags)
        print(f"fastce: OpenMP {'on' if openmp else 'off'}; flags: {shown}",
              file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = compile_flags
            ext.extra_link_args = link_flags
            ext.define_macros = list(ext.define_macros or []) + [
                ("FCE_CFLAGS", '"' + shown + '"'),
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ]
        super().build_extensions()


def _expand_templates():
    """Write each ``*.tp`` Tempita template of the kernels (the SIMD dispatch
    declarations, _runtime.pxd.tp) to the file it names; an unchanged output
    is left untouched so Cython does not rebuild every module."""
    from Cython import Tempita

    for template in sorted(glob.glob(f"{KERNELS}/*.tp")):
        target = template[:-len(".tp")]
        with open(template) as f:
            text = Tempita.sub(f.read())
        if os.path.exists(target):
            with open(target) as f:
                if f.read() == text:
                    continue
        with open(target, "w") as f:
            f.write(text)


def _ext(name, extra_sources=()):
    # setuptools does not scan C headers: name them so edits trigger rebuilds
    headers = sorted(glob.glob(f"{KERNELS}/*.h"))
    return Extension(
        f"fastce._kernels.{name}",
        [f"{KERNELS}/{name}.pyx", *extra_sources],
        include_dirs=[KERNELS, np.get_include()],
        depends=headers,
    )


extensions = [
    _ext("_runtime", [f"{KERNELS}/simd.c"]),
    _ext("_softmax"),
    _ext("_cross_entropy"),
    _ext("_binary"),
]

_expand_templates()
setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3},
        include_path=["."],
    ),
    cmdclass={"build_ext": BuildExt},
)
