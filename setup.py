"""Build script for fastignite's optional Cython extensions.

All metadata lives in pyproject.toml; this file only declares the compiled
extension modules.

* Every ``src/fastignite/**/*.pyx`` becomes the extension module of the same
  dotted name (``src/fastignite/_loop.pyx`` -> ``fastignite._loop``), built
  with the explicit compiler directives below.  Its pure-Python twin stays in
  the package as the fallback that is used where no extension is built.
* With no ``.pyx`` file at all, this builds a pure-Python package.
* ``FASTIGNITE_NO_EXTENSIONS=1`` skips the extensions: a pure-Python build.
* Otherwise a ``.pyx`` file that fails to cythonize or to compile FAILS the
  build.  There is deliberately no silent fallback at build time.
* Generated C is reused while it is newer than its ``.pyx`` (and ``.pxd``) and
  than this file; editing the directives here regenerates all of it.
* ``FASTIGNITE_CYTHON_ANNOTATE=1`` also writes Cython's HTML annotation next to
  each generated ``.c`` file (for hot-path work).
"""

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

ROOT = Path(__file__).resolve().parent
SRC = "src"
PACKAGE = "fastignite"

CYTHON_COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _find_pyx():
    """Every .pyx under src/fastignite, as paths relative to this file."""
    pkg_dir = ROOT / SRC / PACKAGE
    return sorted(p.relative_to(ROOT) for p in pkg_dir.rglob("*.pyx"))


def _extensions():
    if _env_flag("FASTIGNITE_NO_EXTENSIONS"):
        print("fastignite: FASTIGNITE_NO_EXTENSIONS is set, building pure Python")
        return []
    pyx_files = _find_pyx()
    if not pyx_files:
        return []
    extensions = []
    for pyx in pyx_files:
        module = ".".join(pyx.relative_to(SRC).with_suffix("").parts)
        extensions.append(
            Extension(
                module,
                # setuptools wants "/"-separated paths relative to setup.py.
                sources=[pyx.as_posix()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return extensions


def _generated_c_older_than_setup_py():
    """cythonize() only compares timestamps of sources and the generated .c,
    so a change of CYTHON_COMPILER_DIRECTIVES above would leave old C code in
    place: regenerate everything when this file is newer than any .c."""
    setup_mtime = os.path.getmtime(os.path.abspath(__file__))
    for pyx in _find_pyx():
        c_file = ROOT / pyx.with_suffix(".c")
        if c_file.exists() and c_file.stat().st_mtime < setup_mtime:
            return True
    return False


class build_ext(_build_ext):
    """Cythonize the .pyx sources right before compiling them (as uvloop does),
    with explicit directives; any Cython or C compiler error aborts the build."""

    def finalize_options(self):
        # Cythonize first (once per build, the command may be re-finalized):
        # the base class annotates the final Extension objects, so it must
        # see the cythonized ones.
        dist = self.distribution
        if dist.ext_modules and not getattr(dist, "_fastignite_cythonized", False):
            self._cythonize()
            dist._fastignite_cythonized = True
        super().finalize_options()

    def _cythonize(self):
        try:
            from Cython.Build import cythonize
        except ImportError as exc:  # pragma: no cover - build-env problem
            raise RuntimeError(
                "fastignite: Cython>=3.0 is required to build the extension "
                "modules (it is listed in pyproject.toml's build-system "
                "requires). Set FASTIGNITE_NO_EXTENSIONS=1 for a pure-Python "
                "build."
            ) from exc

        include_dirs = []
        try:
            import numpy
        except ImportError:
            pass
        else:
            include_dirs.append(numpy.get_include())
        for ext in self.distribution.ext_modules:
            ext.include_dirs = list(ext.include_dirs) + include_dirs

        try:
            self.distribution.ext_modules[:] = cythonize(
                self.distribution.ext_modules,
                compiler_directives=CYTHON_COMPILER_DIRECTIVES,
                annotate=_env_flag("FASTIGNITE_CYTHON_ANNOTATE"),
                force=bool(self.force) or _generated_c_older_than_setup_py(),
            )
        except Exception as exc:
            sys.stderr.write(
                "\nfastignite: Cython compilation FAILED ({}: {}).\n"
                "Fix the .pyx error above; the build does not fall back to "
                "pure Python. (FASTIGNITE_NO_EXTENSIONS=1 builds without "
                "extensions on purpose.)\n\n".format(type(exc).__name__, exc)
            )
            raise


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": build_ext},
)
