"""`python -m lms_sandbox`: serve the sandbox configured from SANDBOX_* variables."""

from .server import serve

if __name__ == "__main__":
    serve()
