"""A slow start says why; a quick one says nothing."""

from __future__ import annotations

import io
import time

import pytest

from improv.live.notice import notice_if_slow


def test_a_block_still_running_after_the_delay_writes_the_line_once() -> None:
    out = io.StringIO()
    with notice_if_slow(0.05, "preparing the model", out):
        time.sleep(0.3)
    assert out.getvalue() == "preparing the model\n"


def test_a_quick_block_writes_nothing_even_later() -> None:
    out = io.StringIO()
    with notice_if_slow(0.1, "preparing the model", out):
        pass
    time.sleep(0.25)
    assert out.getvalue() == ""


def test_an_error_in_the_block_cancels_the_line() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError), notice_if_slow(0.1, "preparing the model", out):
        raise ValueError("a bad model file")
    time.sleep(0.25)
    assert out.getvalue() == ""
