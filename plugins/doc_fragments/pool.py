# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Where the pool lives: options shared by pool_member and pool_member_info
    # (module_utils/_pool_args.py).
    DOCUMENTATION = r"""
options:
  backend:
    description:
      - Where the pool lives.
      - >-
        V(conftool) - keys in etcd the way Wikimedia's conftool keeps them,
        C(<conftool_prefix>/<datacenter>/<cluster>/<service>/<name>) holding
        C({"pooled": "yes"|"no"|"inactive", "weight": N}); a load balancer (PyBal, or the
        loadbalancer role's pool agent) applies them. What these modules write C(confctl)
        reads, and the reverse.
      - V(haproxy) - HAProxy's own server state, through its runtime API.
      - >-
        A member's state means the same in both: V(pooled) takes new connections (HAProxy
        C(ready)); V(depooled) takes no new connection while its current ones finish, and
        stays health-checked (HAProxy C(drain)); V(inactive) is out of the pool's
        configuration (HAProxy C(maint), health checks stopped).
    type: str
    required: true
    choices: [conftool, haproxy]
  etcd_url:
    description:
      - etcd client URL (conftool). The v2 keys API must be enabled.
    type: str
    default: http://127.0.0.1:2379
  etcd_ca_path:
    description:
      - CA bundle to verify etcd's certificate with, for an C(https) O(etcd_url).
    type: path
  etcd_username:
    description:
      - The etcd user to log in as, where etcd's v2 authentication is on (the loadbalancer role
        turns it on); its role must allow writing the pool's keys (reading, for pool_member_info).
    type: str
  etcd_password:
    description:
      - Its password.
    type: str
  datacenter:
    description:
      - conftool datacenter, for example V(eqiad). Required with O(backend=conftool).
    type: str
  cluster:
    description:
      - conftool cluster, for example V(eventbus). Required with O(backend=conftool).
    type: str
  service:
    description:
      - conftool service, for example V(eventbus). Required with O(backend=conftool).
    type: str
  conftool_prefix:
    description:
      - Key prefix of conftool's pools (conftool's namespace and API version).
    type: str
    default: /conftool/v1/pools
  haproxy_socket:
    description:
      - Path of HAProxy's runtime API unix socket (C(stats socket ... level admin)).
    type: path
  haproxy_address:
    description:
      - C(host:port) of HAProxy's runtime API over TCP, instead of O(haproxy_socket).
    type: str
  haproxy_backend:
    description:
      - HAProxy backend the server belongs to. Required with O(backend=haproxy).
    type: str
  timeout:
    description:
      - Seconds to wait for each answer from etcd or HAProxy.
    type: float
    default: 10.0
"""
