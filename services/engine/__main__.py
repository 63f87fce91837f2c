"""`python -m services.engine`: one engine replica of the distributed mode."""

from libs.runner import run_service
from services.engine.service import start

if __name__ == "__main__":
    run_service("engine", start)
