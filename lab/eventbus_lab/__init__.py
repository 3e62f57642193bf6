"""The local lab of eventbus-ops, in one place (installed editable into .venv by make venv).

``inventory``  the one model of the lab: inventories/lab read once (hosts, groups, addresses,
               datacenters, service addresses, load balancers, brokers)
``image``      the debootstrap base image, built once and cached
``network``    the bridge, a network namespace and veth pair per host
``machines``   systemd-nspawn containers under a supervisor loop, ssh
``cli``        ``lab.py up | status | down``
"""
