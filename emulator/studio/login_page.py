"""The login page: a form that takes the project's API key. It is shown (with 401) wherever a
visitor has no session, so it carries its own small style: the Studio's assets need a login."""

from __future__ import annotations

import secrets
from html import escape

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>localmesh Studio: log in</title>
<style nonce="{nonce}">
  body {{ font: 15px/1.5 system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }}
  main {{ max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 10px;
         box-shadow: 0 2px 12px rgba(0, 0, 0, .08); }}
  h1 {{ font-size: 1.3rem; margin: 0 0 1rem; }}
  label {{ display: block; font-weight: 600; margin-bottom: .3rem; }}
  input {{ width: 100%; box-sizing: border-box; padding: .55rem; font: inherit; border: 1px solid #c5cad3;
          border-radius: 6px; }}
  button {{ margin-top: 1rem; padding: .55rem 1.2rem; font: inherit; border: 0; border-radius: 6px;
           background: #3056d3; color: #fff; cursor: pointer; }}
  .error {{ background: #fdecec; color: #a11; padding: .6rem .8rem; border-radius: 6px;
           margin-bottom: 1rem; }}
  p.hint {{ color: #5b6373; font-size: .9rem; }}
  code {{ background: #eef0f4; padding: 0 .25rem; border-radius: 3px; }}
</style>
</head>
<body>
<main>
  <h1>localmesh Studio</h1>
  {error}
  <form method="post" action="/studio/login">
    <label for="key">Project API key</label>
    <input id="key" name="key" type="password" autocomplete="off" placeholder="ma-..." required autofocus>
    <input type="hidden" name="next" value="{next_url}">
    <button type="submit">Log in</button>
  </form>
  <p class="hint">The key is <code>MESHAGENT_API_KEY</code> in the output of <code>localmesh env</code>.
  Or run <code>localmesh studio</code>: it opens this page already logged in.</p>
</main>
</body>
</html>
"""


def login_page(*, message: str | None = None, next_url: str = "/studio") -> tuple[str, str]:
    """The page's style nonce and its HTML."""
    nonce = secrets.token_urlsafe(12)
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return nonce, _PAGE.format(nonce=nonce, error=error, next_url=escape(next_url, quote=True))
