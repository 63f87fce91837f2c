"""`python -m services.notifier`: the notifier of the distributed mode."""

from libs.runner import run_service
from services.notifier.service import start

if __name__ == "__main__":
    run_service("notifier", start)
