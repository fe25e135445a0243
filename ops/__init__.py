"""What operators read and do, in one place for every shell.

`views`: status, failed users, a user's timeline, breaker and reconcile
state, as JSON-ready dicts. `commands`: replay, breaker approve / cancel /
thresholds, reconcile requests. The CLI (cli/), the admin API
(api/admin/) and the admin page (api/web/) call these and add only their
own input parsing, authorisation and audit lines. Nothing here knows HTTP
or argv.
"""
