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


def test_what_a_pause_built_goes_to_the_oldest_generation_unwalked():
    with gc_paused():
        built = [[n] for n in range(1000)]
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(item) in oldest for item in built)
    assert id(built) in oldest


def test_objects_frozen_by_someone_else_stay_frozen():
    loaded = [[n] for n in range(10)]
    gc.freeze()  # as the API does with what it loaded at start
    try:
        with gc_paused():
            built = [[n] for n in range(1000)]
        # still in the permanent generation, which get_objects does not list (the freeze
        # count would not do: frozen objects freed meanwhile leave it)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(item) in tracked for item in (loaded, *loaded))
        young = [o for generation in (0, 1) for o in gc.get_objects(generation=generation)]
        assert id(built) in {id(o) for o in young}  # left where the collector put it
    finally:
        gc.unfreeze()
