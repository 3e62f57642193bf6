"""Filters, parsers and the sampling loop of _tcp_idle."""

from __future__ import annotations

import json

import pytest
from ansible_collections.eventplatform.eventbus.plugins.module_utils import _tcp_idle as idle


def test_tcpdump_filter_matches_the_runbook_check():
    nets = idle.networks(["10.64.0.10", "10.2.0.0/16"])
    assert idle.tcpdump_filter(8085, ["10.2.2.1"], nets) == (
        "tcp dst port 8085 and (tcp[tcpflags] & (tcp-syn|tcp-ack)) == tcp-syn"
        " and (dst host 10.2.2.1) and not src net 10.64.0.10/32 and not src net 10.2.0.0/16"
    )


def test_tcpdump_lines_counted_by_source():
    lines = [
        "17:11:03.060363 lo    In  IP 127.0.0.3.33553 > 127.0.0.2.38837: tcp 0",
        "17:11:03.110661 eth0  In  IP 10.0.0.1.48679 > 10.0.0.2.8085: tcp 0",
        "17:11:03.160962 eth0  In  IP6 2001:db8::1.37003 > 2001:db8::2.8085: tcp 0",
        "17:11:03.160962 eth0  In  IP 10.0.0.1.1234 > 10.0.0.2.8085: tcp 0",
        "garbage",
    ]
    assert idle.count_tcpdump_sources(lines) == {"127.0.0.3": 1, "10.0.0.1": 2, "2001:db8::1": 1}


def test_nft_ruleset_counts_only_and_skips_families_without_destination():
    ruleset = idle.nft_ruleset("t", 8085, ["10.0.0.2"], idle.networks(["10.64.0.10"]))
    assert "policy accept;" in ruleset
    assert "drop" not in ruleset
    assert "ip daddr { 10.0.0.2 } ip saddr != { 10.64.0.10/32 } add @src4 { ip saddr }" in ruleset
    assert "ip6" not in ruleset
    both = idle.nft_ruleset("t", 8085, [], [])
    assert "add @src4 { ip saddr }" in both
    assert "add @src6 { ip6 saddr }" in both


def test_nft_set_counts_from_json_listing():
    listing = {
        "nftables": [
            {"metainfo": {}},
            {
                "set": {
                    "name": "src4",
                    "elem": [
                        {"elem": {"val": "127.0.0.1", "counter": {"packets": 3, "bytes": 180}}},
                        {"elem": {"val": "127.0.0.3", "counter": {"packets": 0, "bytes": 0}}},
                    ],
                }
            },
        ]
    }
    assert idle.nft_set_counts(json.dumps(listing)) == {"127.0.0.1": 3}


def test_established_connections_from_proc_tables(tmp_path):
    tcp = tmp_path / "tcp"
    # local 127.0.0.2:8085 (1F95), remote 127.0.0.1:40000 (9C40), state 01 ESTABLISHED;
    # one in TIME_WAIT (06) and one LISTEN (0A) that must not count
    tcp.write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 0200007F:1F95 0100007F:9C40 01 0 0\n"
        "   1: 0200007F:1F95 0100007F:9C41 06 0 0\n"
        "   2: 00000000:1F95 00000000:0000 0A 0 0\n"
        "   3: 0100007F:1F95 0300007F:9C42 01 0 0\n"
    )
    assert idle.established_connections(8085, [], [], tables=[str(tcp)]) == [
        "127.0.0.1:40000",
        "127.0.0.3:40002",
    ]
    assert idle.established_connections(8085, ["127.0.0.2"], [], tables=[str(tcp)]) == [
        "127.0.0.1:40000"
    ]
    assert idle.established_connections(
        8085, [], idle.networks(["127.0.0.1/32"]), tables=[str(tcp)]
    ) == ["127.0.0.3:40002"]


class FakeSampler:
    method = "fake"

    def __init__(self, counts):
        self.counts = list(counts)

    def sample(self, window):
        return idle.Sample({"10.0.0.1": self.counts.pop(0)} if self.counts[0] else {}, window)


def test_loop_stops_at_the_first_idle_sample():
    samples = idle.wait_until_idle(FakeSampler([50, 5, 0, 9]), 1.0, 0, 60, 8085)
    assert [s.count for s in samples] == [50, 5, 0]


def test_loop_fails_with_rate_and_top_sources_at_timeout():
    ticks = iter([0, 1, 2, 3, 4, 5])
    with pytest.raises(
        idle.IdleCheckError, match=r"still gets 7\.00 .* top sources: 10\.0\.0\.1 \(7\)"
    ) as err:
        idle.wait_until_idle(FakeSampler([7] * 10), 1.0, 0, 3, 8085, clock=lambda: next(ticks))
    assert len(err.value.samples) == 3


class CountingSampler:
    method = "fake"

    def __init__(self, counts):
        self.counts = list(counts)

    def sample(self, window):
        count = self.counts.pop(0)
        return idle.Sample({"10.0.0.1": count} if count else {}, window)


def test_consecutive_quiet_windows_are_required():
    # sparse traffic: one quiet window between two busy ones does not count
    samples = idle.wait_until_idle(CountingSampler([3, 0, 2, 0, 0, 5]), 1.0, 0, 60, 8085, windows=2)
    assert [s.count for s in samples] == [3, 0, 2, 0, 0]


def test_windows_below_one_is_refused():
    params = {"window": 1.0, "timeout": 5.0, "windows": 0}
    with pytest.raises(idle.IdleCheckError, match="windows must be 1 or more"):
        idle.run(params, lambda name: None, euid=0)
