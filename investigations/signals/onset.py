"""When an alert's condition began, which its startsAt does not say.

Prometheus sends an alert once its rule's `for` has passed, with that moment as startsAt
(the rule's FiredAt), so a rule that waits five minutes reports a condition that has held
for five. It keeps when each alert became pending in the series ALERTS_FOR_STATE: one per
alert of a rule with a `for`, labelled as the alert (without the server's external
labels), whose value is that moment in unix seconds. Prometheus writes it to its own
storage, as Thanos' and Mimir's rulers do to theirs; a store that has none (rules
evaluated elsewhere, `for: 0s`, a replay of past data) leaves startsAt as it is.
"""

from investigations.scope import quote

FOR_STATE = "ALERTS_FOR_STATE"


def for_state_query(labels):
    """The query of the pending-since series of the alerts named as the alert `labels`."""
    return f"{FOR_STATE}{{alertname={quote(labels.get('alertname', ''))}}}"


async def pending_since(prometheus, labels, fired_at, earliest):
    """Unix seconds since which the alert `labels` (a dict) had been pending when it fired
    at `fired_at` (unix seconds): the value of the ALERTS_FOR_STATE series whose labels
    all are the alert's (the most of them, where several are), no earlier than `earliest`;
    None where there is no such series or it says nothing earlier than `fired_at`."""
    result = await prometheus.query(for_state_query(labels), fired_at)
    own = [
        sample
        for sample in result.vector
        if all(labels.get(k) == v for k, v in sample.labels.items() if k != "__name__")
    ]
    if not own:
        return None
    since = max(own, key=lambda sample: len(sample.labels)).value
    if not since < fired_at:
        return None
    return max(since, earliest)
