"""Builds the optional C accelerator; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the numpy reference path runs.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "stream_neuron.neuron._kernels",
            sources=[
                "stream_neuron/neuron/_kernels.c",
                "stream_neuron/neuron/_sparse_kernel.c",
                "stream_neuron/neuron/_touched.c",
            ],
            depends=["stream_neuron/neuron/_kernel_common.h"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "stream_neuron._encode",
            sources=[
                "stream_neuron/_encode.c",
                "stream_neuron/_encode_hash.c",
                "stream_neuron/_key_table.c",
                "stream_neuron/_named_events.c",
            ],
            depends=[
                "stream_neuron/_encode_common.h",
                "stream_neuron/_key_table.h",
                "stream_neuron/_event_tokens.h",
                "stream_neuron/_event_records.h",
            ],
            extra_compile_args=["-O3"],
            libraries=["dl"],  # dlopen of mmh3's extension (part of libc on newer glibc)
            optional=True,
        ),
        Extension(
            "stream_neuron._events",
            sources=["stream_neuron/_events.c", "stream_neuron/_predictions.c"],
            depends=["stream_neuron/_event_tokens.h", "stream_neuron/_event_records.h"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "stream_neuron._drift",
            sources=["stream_neuron/_drift.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)
