"""Stable event ids are the version-5 UUIDs every consumer already knows them as."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.core.ids import stable_uuid

NS = uuid.UUID("0c7f3b2e-55d1-4d0a-9a57-3f1e8b6c2d94")


@given(st.text(max_size=200))
def test_a_stable_id_is_the_version_5_uuid_of_its_namespace_and_name(name: str) -> None:
    assert stable_uuid(NS, name) == str(uuid.uuid5(NS, name))


def test_a_stable_id_is_the_same_for_the_same_name_and_differs_for_another() -> None:
    assert stable_uuid(NS, "m1:sent") == stable_uuid(NS, "m1:sent")
    assert stable_uuid(NS, "m1:sent") != stable_uuid(NS, "m1:delivered")
    assert stable_uuid(uuid.NAMESPACE_DNS, "m1:sent") != stable_uuid(NS, "m1:sent")
