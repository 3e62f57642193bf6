"""Client load against a service under test, in the background, and what became of it.

The same client as the lab's (eventbus_lab.loadgen: asyncio, keep-alive connections, a
steady rate), run in a thread of the test; then ``accounting`` compares what the clients
were told with what Kafka holds: sent, acknowledged (201), refused (503: in the service's
failed-events log), found in Kafka, lost (a 201 not in Kafka) and duplicated (in Kafka more
than once).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from eventbus_lab.loadgen import TargetLoad, drive


class BackgroundLoad:
    def __init__(self, address: str, rate: float, clients: int = 8, topic: str = "test.event"):
        self.load = TargetLoad("eqiad", address, topic)
        self.rate, self.clients = rate, clients
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            await drive(self.load, self.rate, self.clients, self._stop)

        asyncio.run(main())

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> TargetLoad:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(120)
        return self.load

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Accounting:
    sent: int
    acknowledged: int
    refused: int
    found: int
    lost: list[str]
    duplicated: list[str]

    def line(self) -> str:
        return (
            f"sent {self.sent}, acknowledged {self.acknowledged}, refused (503) {self.refused}, "
            f"found in Kafka {self.found}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}"
        )


def accounting(
    load: TargetLoad, ids_in_kafka: list[str], also: list[str] | None = None
) -> Accounting:
    """What the clients were told against Kafka's ids; ``also`` are more ids the test sent."""
    in_kafka = Counter(ids_in_kafka)
    ours = set(load.acknowledged) | set(load.refused) | set(also or [])
    result = Accounting(
        sent=load.sent,
        acknowledged=len(load.acknowledged),
        refused=len(load.refused),
        found=sum(1 for i in load.acknowledged if in_kafka[i]),
        lost=[i for i in load.acknowledged if not in_kafka[i]],
        duplicated=sorted(i for i in ours if in_kafka[i] > 1),
    )
    print(result.line())
    return result


def summary(load: TargetLoad) -> dict[str, Any]:
    return {"sent": load.sent, "acked": len(load.acknowledged), "failures": load.failures[:5]}
