"""django-q2 entry points: thin, they take ids and call functions testable without a worker."""

from investigations import notify, runner


def run_investigation(investigation_id):
    runner.run(investigation_id)


def answer_followup(investigation_id, index):
    runner.answer_followup(investigation_id, index)


def send_notification(investigation_id, index, attempt):
    notify.deliver(investigation_id, index, attempt)


def sweep_stale_investigations():
    """Scheduled every minute (migration 0003): see runner.sweep_stale."""
    return runner.sweep_stale()
