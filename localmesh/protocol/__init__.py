"""The MeshAgent room protocol, as plain data and pure functions: the bottom layer.

``wire``: frames, envelopes and contents. ``error_codes``: the numbers on the wire.
``tokens``: API keys, participant tokens and the grants they carry. ``llm_urls``: where the LLM
proxy's providers live under the API URL. ``loop_turn``: whether anything else is ready in the
event loop's turn (the hot paths' "write or commit now?"). It imports nothing of
localmesh; the emulator and the Worker SDK both stand on it.
"""
