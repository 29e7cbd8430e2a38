"""Only the optional C accelerator of the pickle scanner; all metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "registry.scanners._pickle_fast",
            ["registry/scanners/_pickle_fast.c"],
            optional=True,  # no compiler: the pure-Python pickle machine runs instead
        )
    ]
)
