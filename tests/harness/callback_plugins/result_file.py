# Test-only callback: writes each host's last task result, with its status, as JSON to
# the file named by EVENTBUS_OPS_RESULT_FILE, so the tests can read what a module returned.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: result_file
type: aggregate
short_description: write task results to a JSON file (eventbus-ops tests only)
description: Writes each host's last task result, with its status, to EVENTBUS_OPS_RESULT_FILE.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "result_file"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._results: dict[str, dict] = {}

    def _record(self, result, status: str) -> None:
        data = dict(result._result)
        data["failed"] = status in ("failed", "unreachable")
        if status == "unreachable":
            data["unreachable"] = True
        self._results[result._host.get_name()] = data

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ["EVENTBUS_OPS_RESULT_FILE"]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self._results, handle, default=str)
