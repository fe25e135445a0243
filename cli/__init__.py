"""The `scim-bridge` command and the process supervisor (`up`, embedded Redis).

Shells only: what an operator reads and does lives in `ops/`, so the admin
API and the web page give the same answers.
"""
