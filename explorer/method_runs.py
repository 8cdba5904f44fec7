"""Expensive explanations on request, with a sample budget, a progress bar and a Cancel button.

What the Compare pages (images: explorer/pages/compare.py; regression: explorer/regression_pages.py;
text: explorer/text_pages.py, with its own button and cards, through `take` and `run`) share.  Expensive
methods (the sampling ones: `compute.sampled_methods()`; the text page's baselines) run on request, as a
run request in session state tied to the view it was made for (model, input, methods, settings).  The
work reports progress through a bar, a Streamlit call: a new input or setting (a rerun) stops it there,
and the next run drops the request, since its view is gone.  *Cancel* does the same on purpose.  What
was finished stays cached (by the page's own cache).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import streamlit as st

from explorer.compute import label, sampled_methods
from explorer.ui import run_progress

BUDGETS = (100, 250, 500, 1000, 2000)
DEFAULT_BUDGET = 1000
Progress = Callable[[float], None]


def budget_slider(where, key: str = "cmp_budget") -> int:
    """The sampling methods' budget (perturbed inputs per explanation), one of BUDGETS."""
    sampled = sampled_methods()
    if st.session_state.get(key) not in BUDGETS:
        st.session_state[key] = DEFAULT_BUDGET
    defaults = sorted({info.defaults[info.budget_setting] for info in sampled})
    return where.select_slider(f"Samples ({', '.join(info.label for info in sampled)})", BUDGETS, key=key,
                               persist_state="session", disabled=not sampled,
                               help="Perturbed inputs per explanation. More is slower and less noisy; the library "
                                    f"default is {', '.join(map(str, defaults)) or 'not set'}.")


@dataclass
class MethodRuns:
    """One page's run requests.  `view(todo)`: the signature of the view a request for `todo` belongs to
    (`compute.signature` of everything that changes the work); `run_one(method, progress)`: compute one
    method's explanation into the page's cache, calling `progress(fraction)` as it goes.  The other fields
    are for a page with methods and words of its own (the text Compare page): `label(method)`, the Cancel
    button's key and help, why a change of view stopped the work."""
    view: Callable[[Sequence[str]], str]
    run_one: Callable[[str, Progress], None]
    key: str = "cmp_run"
    label: Callable[[str], str] = label
    cancel_key: str = "cancel_run"
    cancel_help: str = "Stop the work in flight (a new input or setting stops it too)."
    stopped_why: str = ": the input or a setting changed while they ran"

    def request(self, todo: Sequence[str]) -> None:
        st.session_state.pop(f"{self.key}_finished", None)
        st.session_state[self.key] = {"methods": list(todo), "view": self.view(todo)}

    def cancel(self) -> None:
        # A Cancel clicked in the work's last stretch (after its last progress call) arrives once the
        # request has finished: say so rather than nothing.
        req = st.session_state.pop(self.key, None) or st.session_state.pop(f"{self.key}_finished", None)
        if req:
            st.session_state[f"{self.key}_note"] = _stopped_note("Cancelled", req, self.label)

    def take(self) -> tuple[dict | None, str | None]:
        """The pending request if it belongs to the view on screen (else it is dropped), and the note to
        show: what a Cancel, or a change of view while the work ran, stopped."""
        note = st.session_state.pop(f"{self.key}_note", None)
        request = st.session_state.get(self.key)
        if request is not None and request.get("view") != self.view(request["methods"]):
            st.session_state.pop(self.key, None)
            note = _stopped_note("Stopped", request, self.label, why=self.stopped_why)
            request = None
        return request, note

    def run(self, request: dict, where) -> None:
        """Compute the request (progress bar and Cancel button in `where`), then rerun the page: everything
        is cached now.  A rerun or Cancel stops the script with a BaseException: the request stays for it."""
        try:
            self._run(request, where)
        except Exception:  # a failing method: drop the request (no retry on every rerun), show the error
            st.session_state.pop(self.key, None)
            raise
        st.session_state[f"{self.key}_finished"] = st.session_state.pop(self.key, None)
        st.rerun()

    def _run(self, request: dict, where) -> None:
        """Compute the request's methods with one progress bar and a Cancel button (`ui.run_progress`),
        marking each one done in the request as it finishes (for the Cancelled note)."""
        todo = request["methods"]
        job = run_progress(where, [self.label(m) for m in todo], cancel_key=self.cancel_key, on_cancel=self.cancel,
                           help=self.cancel_help)
        for i, m in enumerate(todo):
            self.run_one(m, job(i))
            request.setdefault("done", []).append(m)

    def area(self, pending: Sequence[str]) -> None:
        """Where the runs happen: run the pending request (rerunning the page when done), or drop it if
        its view is gone; the Cancelled / Stopped note; a *Run N expensive methods* button for `pending`."""
        run_area = st.container()
        request, note = self.take()
        if request is not None:
            self.run(request, run_area)
        if note:
            run_area.info(note, icon=":material/stop_circle:")
        if pending:
            with run_area:
                r1, r2 = st.columns([1, 3], vertical_alignment="center")
                r1.button(f"Run {len(pending)} expensive method{'s' if len(pending) > 1 else ''}", type="primary",
                          icon=":material/play_arrow:", key="run_all", on_click=self.request, args=(list(pending),))
                r2.caption("Waiting: " + ", ".join(self.label(m) for m in pending) + ". They run hundreds to "
                           "thousands of forward passes, with a progress bar and a Cancel button; results are "
                           "cached per model, input and settings.")

    def run_button(self, method: str) -> None:
        """A card's *Run* button for one method not computed yet."""
        st.caption("Not computed yet.")
        st.button("Run", key=f"run_{method}", icon=":material/play_arrow:", width="stretch", on_click=self.request,
                  args=([method],))


def _stopped_note(verb: str, request: dict, label: Callable[[str], str], why: str = "") -> str:
    """What a Cancel (`verb` "Cancelled") or a change of view ("Stopped") stopped.  A method can finish
    before the stop is seen (the work stops only at its next progress call), so the note names the methods
    that did not finish and, apart, those that did (their results are on the page, cached); `label(method)`
    names a method."""
    done = [m for m in request["methods"] if m in request.get("done", ())]
    left = [m for m in request["methods"] if m not in done]
    finished = ", ".join(label(m) for m in done)
    if not left:
        return f"{finished} had finished before it could be {verb.lower()}: the results stay cached."
    kept = f" {finished} had finished and stay{'s' if len(done) == 1 else ''} cached." if done else \
        " What was finished stays cached."
    return f"{verb} {', '.join(label(m) for m in left)}{why}.{kept}"
