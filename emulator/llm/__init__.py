"""The scripted LLM served over HTTP: every provider's endpoint, one player per room.

The engine (scripts, matching, the player, the wire formats) is ``localmesh.scripted_llm``; this
package only keeps one player per room (``LLMHub``) and serves it (``create_llm_router``, with
the provider routes of ``endpoints.py``).
See docs/llm-scripts.md for the endpoint and the admin API.
"""

from .caller import Caller
from .hub import LLMHub


def __getattr__(name: str):
    # The HTTP endpoint needs FastAPI: imported only by the server's app, when it starts.
    if name == "create_llm_router":
        from .router import create_llm_router

        return create_llm_router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Caller", "LLMHub", "create_llm_router"]
