"""Where MeshAgent's LLM proxy serves each provider under the API URL (SDK 0.56.0,
``meshagent/cli/config.py``), and the variables that point clients there.

Shared by the emulator (``localmesh env``) and the Worker SDK (its adapters' defaults and the
environment ``localmesh service run`` gives a program), so they cannot disagree.
"""

from __future__ import annotations

PROVIDER_PATHS = {"openai": "openai/v1", "anthropic": "anthropic", "grok": "grok/v1"}


def provider_base_url(api_url: str, provider: str) -> str:
    """``{api_url}/openai/v1``, ``{api_url}/anthropic`` or ``{api_url}/grok/v1``."""
    return f"{api_url.rstrip('/')}/{PROVIDER_PATHS[provider]}"


def llm_environment(api_url: str) -> dict[str, str]:
    """The base-URL variables the SDK and plain clients read, as `meshagent room connect` sets them."""
    grok = provider_base_url(api_url, "grok")
    return {
        "OPENAI_BASE_URL": provider_base_url(api_url, "openai"),
        "ANTHROPIC_BASE_URL": provider_base_url(api_url, "anthropic"),
        "GROK_BASE_URL": grok,
        "XAI_BASE_URL": grok,
    }
