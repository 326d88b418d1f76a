"""The localmesh Studio: a page at ``/studio`` to see and drive the rooms of a running server.

``routes.py`` serves it (``mount_studio``), ``auth.py`` decides who may look, ``data.py`` and
the ``*_view.py`` modules read what each view shows, ``live.py`` pushes changes, and
``static/`` holds the page itself (plain HTML, CSS and JavaScript; nothing to build).
"""

from .auth import login_link, mint_login_code
from .routes import mount_studio

__all__ = ["login_link", "mint_login_code", "mount_studio"]
