"""The scripted LLM served over HTTP: an OpenAI Responses endpoint per room.

The engine (scripts, matching, the player) is ``localmesh.scripted_llm``; this package only
keeps one player per room (``LLMHub``) and serves it (``create_llm_router``).
See docs/llm-scripts.md for the endpoint and the admin API.
"""

from .hub import LLMHub
from .router import create_llm_router

__all__ = ["LLMHub", "create_llm_router"]
