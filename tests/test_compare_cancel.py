"""The Compare page's expensive methods: a Run request shows a progress bar and a Cancel button;
Cancel, or a new input or setting while they run, stops the work (what finished stays cached).

AppTest runs a script to its end, so a toy expensive method stands in for the browser: on its first
call it reports progress and then stops the script run with `st.stop()`, which leaves the page as an
interrupted run leaves it (the bar and the Cancel button on screen, the request still pending)."""
from __future__ import annotations

import pytest
import streamlit as st
import torch

from sop.methods import register_method, unregister_method

from test_app import new_app, run, switch, texts

TOY = "toy_interrupted"
LABEL = "Toy interrupted"
CALLS: list[float] = []
STOP_AT_FIRST_CALL = {"on": True}


@pytest.fixture
def toy():
    CALLS.clear()
    STOP_AT_FIRST_CALL["on"] = True

    @register_method(TOY, label=LABEL, defaults=dict(seed=0))
    def toy_interrupted(model, x, target, settings, progress, grid):
        """A toy expensive method: progress at 50 %, then (first call) the script is interrupted."""
        CALLS.append(1)
        if progress is not None:
            progress(0.5)
        if STOP_AT_FIRST_CALL["on"]:
            STOP_AT_FIRST_CALL["on"] = False
            st.stop()  # what a rerun does to the running script at its next Streamlit call
        return torch.linspace(0, 1, x.shape[-2] * x.shape[-1]).view(x.shape[-2:])

    yield TOY
    unregister_method(TOY)


def compare_page(**query):
    at = run(new_app(**query))
    return switch(at, "compare")


def only_toy(at):
    at.pills(key="compare_methods").set_value(["sop", TOY])
    return run(at)


def bars(at) -> list[str]:
    return [getattr(p, "text", None) or "" for p in at.get("progress")]


def test_run_shows_progress_and_cancel_then_cancel_stops_it(toy):
    at = only_toy(compare_page(input="test:1"))
    assert at.button(key=f"run_{TOY}").label == "Run"
    at.button(key=f"run_{TOY}").click()
    run(at)
    # interrupted in flight: the progress bar (at 50 % of the toy) and the Cancel button are on screen
    assert CALLS == [1]
    assert any(f"Running {LABEL} (1/1)… 50%" in t for t in bars(at)), bars(at)
    assert at.button(key="cancel_run").label == "Cancel"
    at.button(key="cancel_run").click()
    run(at)
    assert CALLS == [1]  # not run again
    assert any(f"Cancelled {LABEL}" in i.value for i in at.info), [i.value for i in at.info]
    assert at.button(key=f"run_{TOY}").label == "Run"  # still waiting for a click
    assert not [b for b in at.button if b.key == "cancel_run"]
    # a later click runs it to the end: the card shows its curves
    at.button(key=f"run_{TOY}").click()
    run(at)
    assert CALLS == [1, 1]
    assert LABEL in set(at.dataframe[0].value["method"])


def test_a_new_setting_while_running_drops_the_work(toy):
    at = only_toy(compare_page(input="test:2"))  # another input: nothing of the test above is cached
    at.button(key="run_all").click()
    run(at)
    assert CALLS == [1] and at.button(key="cancel_run")
    # the user changes a setting while the work is in flight: the rerun stops it, and the request
    # belongs to a view that is gone, so it is dropped rather than resumed
    at.selectbox(key="curve_baseline").set_value("blur")
    run(at)
    assert CALLS == [1]
    assert any(f"Stopped {LABEL}" in i.value and "changed" in i.value for i in at.info)
    assert at.button(key="run_all").label.startswith("Run 1 expensive")
    assert "Not computed yet." in texts(at)


@pytest.fixture
def toy_done():
    """A toy expensive method that always finishes (progress at 50 %, then its map)."""
    @register_method(TOY_DONE, label=DONE_LABEL, defaults=dict(seed=0))
    def toy_finishes(model, x, target, settings, progress, grid):
        if progress is not None:
            progress(0.5)
        return torch.linspace(1, 0, x.shape[-2] * x.shape[-1]).view(x.shape[-2:])

    yield TOY_DONE
    unregister_method(TOY_DONE)


TOY_DONE = "toy_finishes"
DONE_LABEL = "Toy finishes"


def test_cancel_names_what_it_stopped_apart_from_what_had_finished(toy_done, toy):
    at = compare_page(input="test:3")  # an input no other test computes
    at.pills(key="compare_methods").set_value(["sop", TOY_DONE, TOY])
    run(at)
    at.button(key="run_all").click()
    run(at)
    # the first method finished (cached), the second was interrupted in flight: one bar, one Cancel button
    assert CALLS == [1] and len(at.get("progress")) == 1
    assert [b.key for b in at.button].count("cancel_run") == 1
    at.button(key="cancel_run").click()
    run(at)
    notes = [i.value for i in at.info]
    assert any(n.startswith(f"Cancelled {LABEL}.") and f"{DONE_LABEL} had finished and stays cached" in n
               for n in notes), notes
    assert not any(f"Cancelled {DONE_LABEL}" in n for n in notes)
    methods = set(at.dataframe[0].value["method"])
    assert DONE_LABEL in methods and LABEL not in methods      # the finished one is on the page, the other waits
    assert at.button(key=f"run_{TOY}").label == "Run"
    assert not [b for b in at.button if b.key == "cancel_run"]
