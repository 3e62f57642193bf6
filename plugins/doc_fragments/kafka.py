# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    # Connection options shared by the Kafka modules (module_utils/_kafka_admin.py).
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Kafka brokers to connect to, as C(host:port). One reachable broker is enough; the
        client learns the others from it.
    type: list
    elements: str
    required: true
  security_protocol:
    description:
      - Protocol used to talk to the brokers.
    type: str
    default: PLAINTEXT
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
  ssl_cafile:
    description:
      - CA bundle to verify the brokers' certificates with, when O(security_protocol) uses SSL.
    type: path
  ssl_certfile:
    description:
      - Client certificate for mutual TLS.
    type: path
  ssl_keyfile:
    description:
      - Private key of O(ssl_certfile).
    type: path
  ssl_password:
    description:
      - Password of O(ssl_keyfile), if it is encrypted.
    type: str
  ssl_check_hostname:
    description:
      - Whether the brokers' certificates must match their host names.
    type: bool
    default: true
  sasl_mechanism:
    description:
      - SASL mechanism; required when O(security_protocol) uses SASL.
    type: str
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
  sasl_username:
    description:
      - SASL user name.
    type: str
  sasl_password:
    description:
      - SASL password.
    type: str
  request_timeout:
    description:
      - Seconds to wait for each answer from Kafka, and for a first broker to answer at all
        (an unreachable cluster, or refused credentials, fail after this long).
    type: float
    default: 10.0
requirements:
  - kafka-python >= 3.0 on the host that runs the module
"""
