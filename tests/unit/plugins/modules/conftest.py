"""Run a module's main() in-process: exit_json/fail_json raise instead of exiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):  # noqa: N818 - a signal, not an error
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result)
        self.result = result


def _exit_json(self: basic.AnsibleModule, **result: Any) -> None:
    result.setdefault("changed", False)
    raise ModuleExit({**result, "failed": False})


def _fail_json(self: basic.AnsibleModule, msg: str, **result: Any) -> None:
    raise ModuleExit({**result, "msg": msg, "failed": True})


@pytest.fixture
def run_main(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(main: Callable[[], None], args: dict[str, Any]) -> dict[str, Any]:
        with patch_module_args(args), pytest.raises(ModuleExit) as caught:
            main()
        return caught.value.result

    return run
