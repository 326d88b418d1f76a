"""The scripted LLM served over HTTP: every provider's endpoint, one player per room.

The engine (scripts, matching, the player, the wire formats) is ``localmesh.scripted_llm``; this
package only keeps one player per room (``LLMHub``) and serves it (``create_llm_router``, with
the provider routes of ``endpoints.py``).
See docs/llm-scripts.md for the endpoint and the admin API.
"""

from .hub import LLMHub
from .router import create_llm_router

__all__ = ["LLMHub", "create_llm_router"]
