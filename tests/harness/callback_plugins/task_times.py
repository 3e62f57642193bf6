# Developer callback: where a playbook's time goes. Each task's wall time (from its start to
# the next task's start, as the controller sees it) is summed per task name and appended to
# the file named by EVENTBUS_TASK_TIMES (TSV: playbook, task, runs, seconds) when the
# playbook ends; scripts/ci_timing.py report prints the costliest. Enable it with
# ANSIBLE_CALLBACK_PLUGINS=tests/harness/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_times.
from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: sum each task's wall time per task name (eventbus-ops developers)
description: Appends playbook, task, runs and seconds to the TSV file EVENTBUS_TASK_TIMES.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._playbook = ""
        self._current: tuple[str, float] | None = None
        self._seconds: dict[str, float] = defaultdict(float)
        self._runs: dict[str, int] = defaultdict(int)

    def _close(self) -> None:
        if self._current is not None:
            name, started = self._current
            self._seconds[name] += time.monotonic() - started
            self._runs[name] += 1
            self._current = None

    def v2_playbook_on_start(self, playbook) -> None:
        self._playbook = Path(playbook._file_name).name

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._close()
        self._current = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats) -> None:
        self._close()
        target = os.environ.get("EVENTBUS_TASK_TIMES")
        if not target:
            return
        with open(target, "a", encoding="utf-8") as out:
            for name, seconds in self._seconds.items():
                clean = name.replace("\t", " ").replace("\n", " ")
                out.write(f"{self._playbook}\t{clean}\t{self._runs[name]}\t{seconds:.2f}\n")
