"""Shared fixtures: whether a GPU adapter is here, and the rule that GPU tests fail rather
than skip when DOWNHILL_REQUIRE_GPU=1 (as CI sets it)."""

import os

import pytest

import downhill


def has_gpu():
    return len(downhill.devices()) > 0


def need_gpu():
    """Skips the calling test without an adapter, unless DOWNHILL_REQUIRE_GPU=1 (then it
    fails)."""
    if has_gpu():
        return
    if os.environ.get("DOWNHILL_REQUIRE_GPU") == "1":
        pytest.fail("DOWNHILL_REQUIRE_GPU=1 but wgpu finds no adapter")
    pytest.skip("no GPU adapter")
