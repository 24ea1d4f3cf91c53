"""The collector waits while a run builds its catalog and windows, then runs as before."""

import gc

import pytest

from billing.gc_pause import gc_paused


def test_the_collector_waits_inside_and_is_left_as_it_was_after():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a failed build")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # someone else's disabling is theirs to end
    finally:
        gc.enable()
