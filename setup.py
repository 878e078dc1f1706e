"""Build script for fastignite's optional Cython extensions.

All metadata lives in pyproject.toml; this file only declares the compiled
extension modules.

* Every ``src/fastignite/**/*.pyx`` becomes the extension module of the same
  dotted name (``src/fastignite/_dispatch_c.pyx`` -> ``fastignite._dispatch_c``),
  built with the explicit compiler directives below.  Its pure-Python twin
  (``fastignite._dispatch_py``) stays in the package as the fallback used where
  no extension is built.
* No extension is built, and the result is a pure ``py3-none-any`` wheel that
  runs the pure twin, when:

  - ``FASTIGNITE_NO_EXTENSIONS=1`` is set;
  - the interpreter is not CPython (PyPy, GraalPy, ...): the extension uses
    CPython internals;
  - the interpreter is free-threaded CPython (``Py_GIL_DISABLED``): the project
    gives such builds the pure twin, so that importing fastignite never turns
    the GIL back on.

  A pure build leaves the Cython sources (``.pyx``/``.pxd``) out of the wheel:
  they are of no use without the extension.  ``fastignite/_backend.py``
  applies the same interpreter rule at import (``compiled_unsupported``), and
  runs the pure twin silently where no extension was built.
* Otherwise (CPython with a GIL) a ``.pyx`` file that fails to cythonize or to
  compile FAILS the build.  There is deliberately no silent fallback at build
  time.
* Extensions are built without debug information and, where the linker takes
  ``-s`` (not macOS, not MSVC), stripped; ``build_ext --debug`` keeps both.
* Generated C is reused while it is newer than its ``.pyx``, its own ``.pxd``,
  every ``.pxd`` it cimports (so modules that cimport each other's ``.pxd`` are
  regenerated together) and this file; editing the directives here
  regenerates all of it.
* ``FASTIGNITE_CYTHON_ANNOTATE=1`` also writes Cython's HTML annotation next to
  each generated ``.c`` file (for hot-path work).
"""

import os
import platform
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py

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


def _pure_build_reason():
    """Why this build makes no extension, or None when it makes them."""
    if _env_flag("FASTIGNITE_NO_EXTENSIONS"):
        return "FASTIGNITE_NO_EXTENSIONS is set"
    implementation = platform.python_implementation()
    if implementation != "CPython":
        return "{} runs the pure-Python twin".format(implementation)
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded CPython runs the pure-Python twin (the GIL stays off)"
    return None


def _find_pyx():
    """Every .pyx under src/fastignite, as paths relative to this file."""
    pkg_dir = ROOT / SRC / PACKAGE
    return sorted(p.relative_to(ROOT) for p in pkg_dir.rglob("*.pyx"))


def _extensions():
    reason = _pure_build_reason()
    if reason:
        print("fastignite: building pure Python, no extension: " + reason)
        return []
    # setuptools wants "/"-separated paths relative to setup.py.
    return [
        Extension(".".join(pyx.relative_to(SRC).with_suffix("").parts), sources=[pyx.as_posix()])
        for pyx in _find_pyx()
    ]


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

    def build_extensions(self):
        # Small wheels: no debug information (GCC and Clang take -g0, which
        # overrides the -g of Python's own CFLAGS), and a stripped symbol table
        # where the linker takes -s.  MSVC writes no debug information unless
        # asked to; Apple's linker ignores -s (and there is nothing to strip
        # after -g0).
        # Cython's `cdef inline` is only a hint, which GCC declines for the
        # slot accessors of _fields.pxd once 3.12's immortal-object reference
        # counting makes them larger: a call each, a tenth of an empty
        # iteration.  Forced, they cost what the loop needs.
        for ext in self.extensions:
            ext.define_macros = list(ext.define_macros or []) + [
                ("CYTHON_INLINE", "__forceinline" if self.compiler.compiler_type == "msvc"
                 else "__inline__ __attribute__((always_inline))")
            ]
        if self.compiler.compiler_type != "msvc" and not self.debug:
            for ext in self.extensions:
                ext.extra_compile_args = list(ext.extra_compile_args or []) + ["-g0"]
                if sys.platform != "darwin":
                    ext.extra_link_args = list(ext.extra_link_args or []) + ["-s"]
        super().build_extensions()

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


class build_py(_build_py):
    """A build with no extension ships no Cython sources (see the docstring)."""

    def exclude_data_files(self, package, src_dir, files):
        files = super().exclude_data_files(package, src_dir, files)
        if not self.distribution.ext_modules:
            files = [f for f in files if not f.endswith((".pyx", ".pxd"))]
        return files


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": build_ext, "build_py": build_py},
)
