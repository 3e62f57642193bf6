# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one etcd client of the collection: the v2 keys API, which conftool uses.

Used by the pool modules (conftool pools), the run lock, the load balancer's pool agent
(files/loadbalancer/eventbus_lb.py, which runs on the load balancer with the distribution's
Python: so this file imports the standard library only) and the tests.

Every answer is ``(body, index)``: etcd's JSON answer (errors included, with ``status`` set
to the HTTP status) and the ``X-Etcd-Index`` it was given at. ``EtcdUnavailableError`` means
etcd could not be reached or cut the answer off; the caller decides whether to retry.
``EtcdAuthError`` means etcd (with v2 authentication on) refused the client's login, or its
user has no right to the key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import quote, urlencode, urlsplit

# etcd v2 error codes (etcd/error/error.go)
KEY_NOT_FOUND = 100
COMPARE_FAILED = 101
NODE_EXISTS = 105
INDEX_CLEARED = 401
AUTH_REQUIRED = 110  # "The request requires user authentication": no login, a wrong one, no right


class EtcdUnavailableError(Exception):
    """etcd did not answer (refused, timed out, cut off mid-answer)."""

    def __init__(self, message, timed_out=False):
        super(EtcdUnavailableError, self).__init__(message)
        self.timed_out = timed_out


class EtcdAuthError(Exception):
    """etcd refused the request: no login where one is required, a wrong password, or a user
    without the right to the key."""


class EtcdClient(object):
    """``url`` is etcd's client URL (``http://host:2379`` or ``https://...``); with
    ``username``, every request logs in as that user (HTTP basic auth, etcd's v2 auth)."""

    def __init__(self, url, timeout=10.0, ca_path=None, validate_certs=True, username=None,
                 password=None):  # fmt: skip
        self.url = url.rstrip("/")
        self.timeout = timeout
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("etcd URL %r is not http(s)://host[:port]" % url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or 2379
        self.username = username
        self._authorization = None
        if username:
            login = ("%s:%s" % (username, password or "")).encode("utf-8")
            self._authorization = "Basic " + base64.b64encode(login).decode("ascii")
        self._context = None
        if self._https:
            self._context = ssl.create_default_context(cafile=ca_path)
            if not validate_certs:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE

    @staticmethod
    def key_path(key, query=None):
        return "/v2/keys%s%s" % (
            quote(key),
            ("?" + urlencode(sorted(query.items()))) if query else "",
        )

    def request(self, method, key, query=None, form=None, timeout=None, path=None, payload=None):
        """One call of the keys API (a connection of its own); ``(body, index)``. With
        ``path`` and ``payload``, a call of another v2 API (``/v2/auth/...``) with a JSON body."""
        if payload is not None:
            data = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"}
        else:
            data = urlencode(sorted(form.items())).encode() if form is not None else None
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if data else {}
        if self._authorization:
            headers["Authorization"] = self._authorization
        timeout = timeout or self.timeout
        if self._https:
            connection = HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._context
            )
        else:
            connection = HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            target = path or self.key_path(key, query)
            connection.request(method, target, body=data, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
            body, index = self._decode(raw, answer.status if answer.status >= 300 else 0, answer)
        except (OSError, HTTPException) as err:
            raise EtcdUnavailableError(
                "cannot reach etcd at %s: %s" % (self.url, err),
                timed_out=isinstance(err, socket.timeout),
            ) from err
        finally:
            connection.close()
        if body.get("errorCode") == AUTH_REQUIRED or body.get("status") in (401, 403):
            who = "as %s" % self.username if self.username else "without a login"
            raise EtcdAuthError(
                "etcd at %s refused %s %s %s (%s): check the etcd user and password, and that "
                "the user's role may %s that key"
                % (self.url, method, key, who, body.get("message") or body.get("status"),
                   "write" if method in ("PUT", "POST", "DELETE") else "read")
            )  # fmt: skip
        return body, index

    @staticmethod
    def _decode(raw, status, headers):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"message": raw[:200].decode("utf-8", "replace")}
        if not isinstance(body, dict):
            body = {"message": repr(body)}
        if status:
            body["status"] = status
        index = headers.getheader("X-Etcd-Index") if headers is not None else None
        return body, int(index) if index and index.isdigit() else 0

    # -- the calls the collection makes ---------------------------------------------------
    def get(self, key, recursive=False, wait=False, wait_index=None, timeout=None):
        query = {}
        if recursive:
            query["recursive"] = "true"
        if wait:
            query["wait"] = "true"
            if wait_index is not None:
                query["waitIndex"] = str(wait_index)
        return self.request("GET", key, query, timeout=timeout)

    def put(self, key, value, prev_index=None, prev_exist=None, prev_value=None, ttl=None):
        """Write ``value``; with ``prev_index``/``prev_exist``/``prev_value`` only if the key
        still matches (compare-and-swap: etcd answers 412, errorCode 101 or 105, otherwise)."""
        query = {}
        if prev_index is not None:
            query["prevIndex"] = str(prev_index)
        if prev_exist is not None:
            query["prevExist"] = "true" if prev_exist else "false"
        if prev_value is not None:
            query["prevValue"] = prev_value
        form = {"value": value}
        if ttl is not None:
            form["ttl"] = str(int(ttl))
        return self.request("PUT", key, query, form)

    def delete(self, key, recursive=False, prev_index=None, prev_value=None):
        query = {}
        if recursive:
            query["recursive"] = "true"
            query["dir"] = "true"
        if prev_index is not None:
            query["prevIndex"] = str(prev_index)
        if prev_value is not None:
            query["prevValue"] = prev_value
        return self.request("DELETE", key, query)

    def auth(self, method, what, payload=None):
        """A call of the v2 auth API; ``what``: ``enable``, ``users/<name>``, ``roles/<name>``."""
        return self.request(method, what, path="/v2/auth/" + what, payload=payload)[0]
