"""Build step beyond pyproject.toml: the optional C fast path for bridged RTP.

media._fastrtp compiles where a C compiler and the Python headers exist (Linux only); where
it does not, the build goes on without it and the media runtime uses its pure-Python path.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("media._fastrtp", ["media/_fastrtp.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall"])])
