"""Build step beyond pyproject.toml: the optional C fast path for bridged RTP.

acd.runtime._fastrtp compiles where a C compiler and the Python headers exist (Linux only);
where it does not, the build goes on without it and the media runtime uses its Python path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("acd.runtime._fastrtp", ["acd/runtime/_fastrtp.c"],
                             optional=True, extra_compile_args=["-Wall"])])
