"""The one thing pyproject.toml cannot say without an experimental table: the compiled hot path.

``bridge.ingest._wire`` (bridge/ingest/wire.py says what it does) is built like hiredis is for
redis-py. It is optional: without a C compiler the build goes on without it, and the bridge runs
its pure-Python path and says so once in its log.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("bridge.ingest._wire", ["bridge/ingest/_wire.c"], optional=True, extra_compile_args=["-O2"])
    ]
)
