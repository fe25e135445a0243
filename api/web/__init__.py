"""The admin web page under `/admin/`: server-rendered (Jinja through
Litestar's template engine, autoescape on), no front-end build, one CSS
file and a few lines of JS for the copy buttons.

Login (`/admin/login`) takes the operator token or a tenant admin key into a
signed session cookie; every state-changing form is a CSRF-checked POST
(`session.py`). The pages call what the admin API and the CLI call
(ops/, mappings/).
`create_app` registers it with `plugins=[AdminPage()]` (`router.py`).
"""

from api.web.router import WEB_PREFIX, AdminPage, web_router

__all__ = ["WEB_PREFIX", "AdminPage", "web_router"]
