"""`python -m services.results`: the results service of the distributed mode.

Settings from the environment (DATABASE_URL and AMQP_URL required), a
RabbitMQ bus, the service, then SIGTERM/SIGINT → graceful stop.
"""

from libs.runner import run_service
from services.results.service import start

if __name__ == "__main__":
    run_service("results", start, needs_database=True)
