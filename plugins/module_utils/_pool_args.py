# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a pool lives: the options pool_member and pool_member_info share (documented by the
``eventplatform.eventbus.pool`` doc fragment), their cross-checks, and the store they build."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.eventplatform.eventbus.plugins.module_utils._conftool import (
    DEFAULT_PREFIX,
    ConftoolPool,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._haproxy import (
    HAProxyPool,
    HAProxyRuntime,
)


def pool_connection_argspec():
    return dict(
        backend=dict(type="str", required=True, choices=["conftool", "haproxy"]),
        etcd_url=dict(type="str", default="http://127.0.0.1:2379"),
        etcd_ca_path=dict(type="path"),
        etcd_username=dict(type="str"),
        etcd_password=dict(type="str", no_log=True),
        datacenter=dict(type="str"),
        cluster=dict(type="str"),
        service=dict(type="str"),
        conftool_prefix=dict(type="str", default=DEFAULT_PREFIX),
        haproxy_socket=dict(type="path"),
        haproxy_address=dict(type="str"),
        haproxy_backend=dict(type="str"),
        timeout=dict(type="float", default=10.0),
    )


POOL_REQUIRED_IF = [
    ("backend", "conftool", ("datacenter", "cluster", "service")),
    ("backend", "haproxy", ("haproxy_backend",)),
    ("backend", "haproxy", ("haproxy_socket", "haproxy_address"), True),
]
POOL_MUTUALLY_EXCLUSIVE = [("haproxy_socket", "haproxy_address")]
POOL_REQUIRED_TOGETHER = [("etcd_username", "etcd_password")]


def build_store(params):
    if params["backend"] == "conftool":
        return ConftoolPool(
            params["etcd_url"],
            params["datacenter"],
            params["cluster"],
            params["service"],
            prefix=params["conftool_prefix"],
            timeout=params["timeout"],
            ca_path=params["etcd_ca_path"],
            username=params["etcd_username"],
            password=params["etcd_password"],
        )
    runtime = HAProxyRuntime(
        socket_path=params["haproxy_socket"],
        address=params["haproxy_address"],
        timeout=params["timeout"],
    )
    return HAProxyPool(runtime, params["haproxy_backend"])
