"""The localmesh Studio: a page at ``/studio`` to see and drive the rooms of a running server.

``routes.py`` serves it (``mount_studio``), ``auth.py`` decides who may look, ``data.py`` and
the ``*_view.py`` modules read what each view shows, ``live.py`` pushes changes, and
``static/`` holds the page itself (plain HTML, CSS and JavaScript; nothing to build).
"""

# Only the login-link helpers here (the command uses them): importing the package must not
# load the web framework; the routes are ``localmesh.emulator.studio.routes``.
from .auth import StudioAuth, login_link, mint_login_code

__all__ = ["StudioAuth", "login_link", "mint_login_code"]
