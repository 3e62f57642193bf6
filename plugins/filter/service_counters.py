# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""service_counters: the eventbus service's own counters, from its /metrics text."""

import re

from ansible.errors import AnsibleFilterError

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)\s*$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """(name, {label: value}, value) of each sample line of Prometheus text exposition."""
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            yield match.group(1), labels, float(match.group(3))


def service_counters(text):
    """Events by outcome and POST /v1/events answers (all, 5xx) so far, summed over topics
    and the service's workers."""
    if not isinstance(text, str):
        raise AnsibleFilterError("service_counters expects the text of /metrics")
    counts = dict(accepted=0.0, invalid=0.0, error=0.0, requests=0.0, server_errors=0.0)
    for name, labels, value in samples(text):
        if name == "eventbus_events_total" and labels.get("outcome") in counts:
            counts[labels["outcome"]] += value
        elif (
            name == "eventbus_request_duration_seconds_count"
            and labels.get("method") == "POST"
            and labels.get("route") == "/v1/events"
        ):
            counts["requests"] += value
            if labels.get("status", "").startswith("5"):
                counts["server_errors"] += value
    return counts


def counters_delta(after, before):
    """What the counters grew by between two readings of service_counters."""
    return dict((key, after.get(key, 0.0) - before.get(key, 0.0)) for key in after)


def counters_delta_pair(pair):
    """counters_delta of an (after, before) pair, for map() over zipped readings."""
    return counters_delta(pair[0], pair[1])


def counters_sum(deltas):
    """Several hosts' counter deltas added up (the old release's, taken together)."""
    total = dict(accepted=0.0, invalid=0.0, error=0.0, requests=0.0, server_errors=0.0)
    for delta in deltas:
        for key in total:
            total[key] += delta.get(key, 0.0)
    return total


def error_ratio(delta):
    """Failed events (invalid and error) over all events, or 5xx over all requests: the
    larger; 0 when nothing came."""
    events = delta["accepted"] + delta["invalid"] + delta["error"]
    event_ratio = (delta["invalid"] + delta["error"]) / events if events else 0.0
    answer_ratio = delta["server_errors"] / delta["requests"] if delta["requests"] else 0.0
    return round(max(event_ratio, answer_ratio), 4)


class FilterModule:
    def filters(self):
        return {
            "service_counters": service_counters,
            "counters_delta": counters_delta,
            "counters_delta_pair": counters_delta_pair,
            "counters_sum": counters_sum,
            "error_ratio": error_ratio,
        }
