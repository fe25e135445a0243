"""The admin page under `/admin/`: server-rendered (Jinja through
Litestar's template engine, autoescape on), no front-end build, one CSS
file and a few lines of JS (copy buttons, focus on a message).

Login (`/admin/login`) takes the operator token or a tenant admin key into a
signed session cookie naming a server-side session (`session.py`); every
state-changing form is a CSRF-checked POST answered with a redirect, its
message (and a new secret, once) kept on the server (`flash.py`). The pages
call what the admin API and the CLI call (ops/, api/admin, mappings/).
`create_app` registers it with `plugins=[AdminPage()]` (`router.py`).
docs/admin-page.md explains it.
"""

from api.web.router import WEB_PREFIX, AdminPage, web_router

__all__ = ["WEB_PREFIX", "AdminPage", "web_router"]
