"""What the server knows of each page session: the newest state of its clip, and what its page shows.

:class:`Sessions` is keyed by Gradio's session hash (one per page load). :mod:`mesm_viz.app` passes every
callback's updates through :meth:`Sessions.send`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import gradio as gr

from mesm_viz.studio import StudioState

__all__ = ["Sessions"]


class Sessions:
    """Per page session (Gradio's session hash): the newest :class:`StudioState` an event produced, and a
    digest of every view value last sent to that page.

    * A follow-up step (the strip, the cost curve, a tab drawn after an update) reads the newest state of its
      clip, not the one it was triggered with: a slider move made meanwhile is not undone.
    * Only what changed is sent: a value equal to the one the page already shows becomes ``gr.skip()`` (at a
      p where the keep floor fixes the face masks, a slider move re-sends no face view at all). Pages only:
      an API client, which runs no page, gets every value every time.
    """

    def __init__(self, size: int = 512) -> None:
        from collections import OrderedDict

        self.size = size
        self.states: OrderedDict[str, StudioState] = OrderedDict()
        self.sent: dict[str, dict[int, str]] = {}
        self.pages: set[str] = set()
        self.lock = threading.Lock()

    def mark_page(self, request: gr.Request | None) -> None:
        """This session is a page (its load event ran)."""
        if request is not None and request.session_hash:
            with self.lock:
                self.pages.add(request.session_hash)

    def newest(self, request: gr.Request | None, state: StudioState | None) -> StudioState | None:
        """The newest state of ``state``'s clip in this session (else ``state`` itself)."""
        if state is None or request is None or not request.session_hash:
            return state
        with self.lock:
            stored = self.states.get(request.session_hash)
        return stored if stored is not None and stored.key == state.key else state

    @staticmethod
    def _digest(value: Any) -> str | None:
        """A digest of an output value, or None for an update object (always sent)."""
        import hashlib

        if isinstance(value, gr.Dataframe) and hasattr(value, "mesm_digest"):
            text = value.mesm_digest
        elif value is None or isinstance(value, (str, dict, list)) and not (isinstance(value, dict) and "__type__" in value):
            text = json.dumps(value, sort_keys=True, default=str)
        else:
            return None
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def send(self, request: gr.Request | None, out: dict, components: Any) -> dict:
        """Remember the newest state in ``out`` and, for a page, replace the values it already shows."""
        session = request.session_hash if request is not None else None
        if not session:
            return out
        with self.lock:
            state = out.get(components.state, gr.skip())
            if isinstance(state, StudioState) or state is None:
                if state is None:
                    self.states.pop(session, None)
                else:
                    self.states[session] = state
                    self.states.move_to_end(session)
                while len(self.states) > self.size:
                    dropped, _ = self.states.popitem(last=False)
                    self.sent.pop(dropped, None)
                    self.pages.discard(dropped)
            if session not in self.pages:
                return out
            sent = self.sent.setdefault(session, {})
            only_ours = {id(x) for x in components.server_views()}
            for component, value in list(out.items()):
                if id(component) not in only_ours:   # a box the user edits may differ from what was sent
                    continue
                digest = self._digest(value)
                if digest is None:
                    sent.pop(component._id, None)
                elif sent.get(component._id) == digest:
                    out[component] = gr.skip()
                else:
                    sent[component._id] = digest
        return out
