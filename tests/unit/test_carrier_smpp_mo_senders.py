"""MO senders as SMSCs send them, made E.164 or refused, and the SMPP demo carrier of make run."""

from __future__ import annotations

import pytest

from deploy import devstack
from services.carriers.smpp.connector import SmppOptions, subscriber_number
from services.core.carriers import load_carriers
from services.core.settings import Settings


@pytest.mark.parametrize(("addr", "ton", "cc", "expected"), [
    ("8613812345678", 1, "", "+8613812345678"),     # international, without the '+'
    ("+8613812345678", 0, "86", "+8613812345678"),  # already E.164
    ("13812345678", 2, "86", "+8613812345678"),     # national (China has no trunk prefix)
    ("07700900123", 2, "44", "+447700900123"),      # national with the trunk prefix 0
    ("07700900123", 0, "44", "+447700900123"),      # TON unknown, but the trunk prefix says national
    ("00447700900123", 0, "", "+447700900123"),     # the international call prefix
    ("447700900123", 0, "86", "+447700900123"),     # TON unknown without a prefix: international
])
def test_an_mo_sender_is_made_international(addr, ton, cc, expected):
    assert subscriber_number(addr, ton, cc) == expected


@pytest.mark.parametrize(("addr", "ton", "cc", "says"), [
    ("555", 1, "", "not an international number"),             # jSMPP's canned MO
    ("555", 2, "1", "not an international number"),             # a short code stays too short
    ("13812345678", 2, "", "needs the carrier's national_country_code"),
    ("0612345678", 0, "", "needs the carrier's national_country_code"),
    ("ACME", 5, "86", "not a subscriber number"),               # alphanumeric
])
def test_an_mo_sender_that_cannot_be_made_e164_is_refused_with_the_reason(addr, ton, cc, says):
    with pytest.raises(ValueError, match=says):
        subscriber_number(addr, ton, cc)


def test_a_national_country_code_that_is_not_one_to_three_digits_is_refused_at_start_up(tmp_path):
    from services.core.carriers import Carrier

    with pytest.raises(ValueError, match="national_country_code"):
        SmppOptions.from_carrier(Carrier("c", kind="smpp", options={
            "host": "h", "port": 1, "system_id": "s", "national_country_code": "8612"}))


def test_the_smpp_demo_runs_no_http_simulator_and_binds_to_jsmpp_with_its_account(tmp_path):
    names = [p.name for p in devstack.platform_specs(Settings(), carrier="smpp")]
    assert "simulator" not in names and "egress" in names and "ingress" in names
    assert "simulator" in [p.name for p in devstack.platform_specs(Settings())]
    (sim,) = load_carriers(devstack.smpp_demo_carriers(tmp_path / "c.json")).values()
    opts = SmppOptions.from_carrier(sim)
    assert (sim.kind, opts.bind.port, opts.bind.system_id, opts.bind.password) == (
        "smpp", devstack.SMSC_PORT, "herald", "herald")
