# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Watching a pool while one of its members is out for maintenance.

A run checks the pool once before it depools a host; a reboot then keeps the host out for
minutes. If the pool's other members stop serving meanwhile (a crash, another operator), the
pool falls below its threshold and, with nothing watching, stays there. ``watch_pool`` reads
the pool every ``interval`` seconds - each other member pooled in the store and answering its
health URL - and when fewer serve than the threshold requires it repools the member under
maintenance as soon as that member answers its own health URL, and returns saying what it saw.
It also returns when asked to stop (``stop_file`` exists), when the run repooled the member
itself, and at its deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import time

from ansible.module_utils.urls import open_url
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    POOLED,
    PoolError,
    required_serving,
    set_membership,
)

# the pool store failing this many reads in a row ends the watch (the run then stops)
MAX_READ_FAILURES = 6
STOP_CHECK = 0.5


def http_healthy(url, timeout=3.0):
    """True when ``url`` answers 200 within ``timeout`` seconds."""
    try:
        response = open_url(url, timeout=timeout, validate_certs=False, follow_redirects="none")
        return response.getcode() == 200
    # any failure (refused, timed out, an HTTP error, a bad answer) means: not healthy
    except Exception:  # noqa: BLE001 # pylint: disable=broad-except
        return False


class Watch(object):
    """What the watch saw: its samples, the first breach, how it ended."""

    def __init__(self, name, threshold):
        self.name = name
        self.threshold = threshold
        self.samples = 0
        self.breach = None
        self.last = None
        self.repooled = False
        self.ended = None
        self.read_failures = 0

    def result(self):
        return dict(
            name=self.name,
            samples=self.samples,
            breached=self.breach is not None,
            breach=self.breach,
            last=self.last,
            repooled=self.repooled,
            ended=self.ended,
        )


def _sample(store, name, health_urls, threshold, probe):
    members = store.members()
    if name not in members:
        raise PoolError("member %s left the pool %s" % (name, store.description))
    needed, intended = required_serving(members, threshold)
    # pooled in the store (HAProxy's own check included) and answering its health URL now;
    # a member without a health URL counts on the store's word
    serving = []
    for other, member in sorted(members.items()):
        if other == name or not member["serving"]:
            continue
        url = health_urls.get(other)
        if url is None or probe(url):
            serving.append(other)
    return dict(
        own=members[name],
        serving=serving,
        not_serving=sorted(n for n in members if n != name and n not in serving),
        needed=needed,
        intended=intended,
    )


def watch_pool(
    store,
    name,
    health_urls,
    own_health_url,
    threshold,
    interval=5.0,
    duration=3600.0,
    stop_file=None,
    repool=True,
    probe=http_healthy,
    sleep=time.sleep,
    clock=time.time,
):
    """Watch until the pool needs member ``name`` back (then repool it once it is healthy),
    until ``stop_file`` exists, until ``name`` is serving again, or for ``duration`` seconds.
    Returns what :class:`Watch` saw; ``ended`` says why it returned."""
    watch = Watch(name, threshold)
    deadline = clock() + duration
    while True:
        if stop_file and os.path.exists(stop_file):
            with contextlib.suppress(OSError):
                os.remove(stop_file)  # read: the next watch of the same name starts afresh
            watch.ended = "stopped"
            return watch.result()
        try:
            seen = _sample(store, name, health_urls, threshold, probe)
            watch.read_failures = 0
        except PoolError as err:
            watch.read_failures += 1
            watch.last = dict(error=str(err))
            if watch.read_failures >= MAX_READ_FAILURES:
                watch.ended = "unreadable"
                return watch.result()
            seen = None
        if seen is not None:
            watch.samples += 1
            watch.last = dict(
                (k, v) for k, v in seen.items() if k in ("serving", "not_serving", "needed")
            )
            if seen["own"]["state"] == POOLED and seen["own"]["weight"] > 0:
                watch.ended = "pooled"  # the run (or someone) put it back
                return watch.result()
            if len(seen["serving"]) < seen["needed"]:
                if watch.breach is None:
                    watch.breach = dict(watch.last, at=clock())
                if repool and probe(own_health_url):
                    try:
                        set_membership(store, name, state=POOLED, wait=True, wait_timeout=30.0)
                    except PoolError as err:
                        watch.last["error"] = "the repool failed: %s" % err
                        watch.ended = "repool failed"
                        return watch.result()
                    watch.repooled = True
                    watch.ended = "repooled"
                    return watch.result()
            elif watch.breach is not None:
                watch.ended = "recovered"  # the others came back before this member could
                return watch.result()
        if clock() >= deadline:
            watch.ended = "deadline"
            return watch.result()
        # in short slices: a stop is seen within STOP_CHECK seconds
        wake = min(clock() + interval, deadline)
        while clock() < wake:
            if stop_file and os.path.exists(stop_file):
                break
            sleep(min(STOP_CHECK, max(0.0, wake - clock())))
