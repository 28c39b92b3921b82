"""Herald's ESME against an SMSC it did not write: smpp34's server, programmed per case
(throttling, refusals, disconnects mid-window, early receipts, concatenated MO), and a raw
socket SMSC for what smpp34 cannot be asked to do (refuse a bind, ignore enquire_link,
answer generic_nack)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest
import smpp34

from services.carriers.base import (
    ConnectionFailed,
    RejectedByCarrier,
    Submission,
    Throttled,
    TransientError,
)
from services.carriers.smpp import pdu as P
from services.carriers.smpp.connector import SmppConnector
from services.core.carriers import Carrier
from services.core.schemas import validate

PORTS = itertools.count(19410)


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), timeout=30))


class Sink:
    """Egress's side, in memory: what was published, and parts until complete."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[tuple[str, dict]] = []
        self.parts: dict[tuple, dict[int, str]] = {}
        self.fail = fail

    async def publish(self, topic: str, key: str, event: dict) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        validate(topic, event)
        self.events.append((topic, event))

    async def collect_part(self, carrier, sender, ref, seq, total, text):
        got = self.parts.setdefault((carrier, sender, ref), {})
        got[seq] = text
        return [got[i] for i in sorted(got)] if len(got) == total else None

    async def drop_parts(self, carrier, sender, ref):
        self.parts.pop((carrier, sender, ref), None)


class Smsc:
    """smpp34's server with a programmable answer to each submit_sm."""

    def __init__(self, port: int, answer: Callable[[Any], Any] | None = None) -> None:
        self.port, self.answer = port, answer or (lambda ev: ev.accept("1A2B"))
        self.server = smpp34.Server("127.0.0.1", port, system_id="SMSC")
        self.esmes: list[Any] = []
        self.submits: list[Any] = []
        self.unbound = 0
        self._pump: asyncio.Task | None = None

    async def __aenter__(self) -> Smsc:
        await self.server.start()
        self._pump = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        while True:
            ev = await self.server.next()
            if isinstance(ev, smpp34.SubmitSmEvent):
                self.submits.append(ev)
                res = self.answer(ev)
                if asyncio.iscoroutine(res):
                    asyncio.ensure_future(res)
            elif isinstance(ev, smpp34.Unbound):
                self.unbound += 1
            else:
                self.esmes.append(ev)

    async def __aexit__(self, *exc: Any) -> None:
        assert self._pump is not None
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._pump
        await self.server.stop()


def carrier(port: int, **options: Any) -> Carrier:
    return Carrier("smsc", kind="smpp", api_token="secret", timeout_s=2,
                   options={"host": "127.0.0.1", "port": port, "system_id": "herald",
                            "reconnect_min_s": 0.05, "reconnect_max_s": 0.2, **options})


def sub(i: int = 1, text: str = "hello", to: str = "+8613800138000") -> Submission:
    return Submission(f"m{i}", to, "10690001", text, "gsm7", 1)


async def until(pred: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        v = pred()
        if v:
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def bound(smsc: Smsc, conn: SmppConnector, n: int = 1) -> None:
    await until(lambda: len(smsc.esmes) >= n and conn.is_up(), "the bind")


def test_a_submission_goes_out_with_a_receipt_requested_and_its_id_recorded_as_the_carrier_id():
    async def case():
        port = next(PORTS)
        async with Smsc(port, lambda ev: ev.accept("00A1B2C3")) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(Sink())
            await bound(smsc, conn)
            res = await conn.submit(sub(text="Hello € {x}"))
            ev = smsc.submits[0]
            assert (ev.destination_addr, ev.dest_addr_ton, ev.source_addr) == ("8613800138000", 1, "10690001")
            assert ev.registered_delivery == 1 and ev.data_coding == 0
            assert ev.short_message == bytes((0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x20, 0x1B, 0x65, 0x20, 0x1B, 0x28,
                                              0x78, 0x1B, 0x29))
            assert (res.carrier, res.carrier_message_id) == ("smsc", "a1b2c3")
            await conn.close()
            await until(lambda: smsc.unbound, "the unbind")
    run(case)


@pytest.mark.parametrize("mode, expected", [("udh8", 3), ("udh16", 3), ("sar", 3), ("payload", 1)])
def test_a_long_message_goes_as_parts_by_the_carriers_choice(mode, expected):
    async def case():
        port = next(PORTS)
        async with Smsc(port, lambda ev: ev.accept(str(len(smsc.submits)))) as smsc:
            conn = SmppConnector(carrier(port, long_messages=mode))
            await conn.start(Sink())
            await bound(smsc, conn)
            text = "你好，世界。" * 20 + "再见" * 15  # 150 UCS-2 characters: 3 parts
            res = await conn.submit(sub(text=text))
            assert len(smsc.submits) == expected
            assert res.carrier_message_id == "1"
            got = b""
            for ev in smsc.submits:
                assert ev.data_coding == 8
                if mode.startswith("udh"):
                    assert ev.esm_class & 0x40
                    got += ev.short_message[ev.short_message[0] + 1:]
                    assert ev.short_message[1] == (0x08 if mode == "udh16" else 0x00)
                elif mode == "sar":
                    tags = {t.tag: t.value for t in ev.tlvs}
                    assert tags[smpp34.TLV_SAR_TOTAL_SEGMENTS] == b"\x03"
                    got += ev.short_message
                else:
                    got += {t.tag: t.value for t in ev.tlvs}[smpp34.TLV_MESSAGE_PAYLOAD]
            assert got.decode("utf-16-be") == text
            await conn.close()
    run(case)


@pytest.mark.parametrize("status", [smpp34.ESME_RTHROTTLED, smpp34.ESME_RMSGQFUL],
                         ids=["ESME_RTHROTTLED", "ESME_RMSGQFUL"])
def test_throttling_answers_are_back_pressure_that_slows_the_bind_and_then_the_retry_goes_out(status):
    async def case():
        port = next(PORTS)
        answers = iter([lambda ev: ev.reject(status)])
        async with Smsc(port, lambda ev: next(answers, lambda e: e.accept("77"))(ev)) as smsc:
            conn = SmppConnector(carrier(port, throttle_pause_s=0.3))
            await conn.start(Sink())
            await bound(smsc, conn)
            with pytest.raises(Throttled) as err:
                await conn.submit(sub())
            assert err.value.transient and err.value.retry_after == pytest.approx(0.3)
            assert P.status_name(status) in err.value.reason
            with pytest.raises(Throttled):  # the bind is slowed down: nothing is sent meanwhile
                await conn.submit(sub(2))
            assert len(smsc.submits) == 1
            await asyncio.sleep(0.35)  # the pause the SMSC was given, not a guess
            assert (await conn.submit(sub(3))).carrier_message_id == "77"
            await conn.close()
    run(case)


def test_a_permanent_refusal_fails_the_message_with_the_named_smpp_status():
    async def case():
        port = next(PORTS)
        async with Smsc(port, lambda ev: ev.reject(smpp34.ESME_RINVDSTADR)) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(Sink())
            await bound(smsc, conn)
            with pytest.raises(RejectedByCarrier, match=r"ESME_RINVDSTADR \(0x0000000B\)"):
                await conn.submit(sub())
            await conn.close()
    run(case)


def test_the_window_holds_at_most_n_submissions_outstanding_on_a_bind():
    async def case():
        port = next(PORTS)
        held: list[Any] = []
        async with Smsc(port, held.append) as smsc:
            conn = SmppConnector(carrier(port, window=4))
            await conn.start(Sink())
            await bound(smsc, conn)
            sends = [asyncio.ensure_future(conn.submit(sub(i))) for i in range(10)]
            await until(lambda: len(held) == 4, "four outstanding submits")
            await asyncio.sleep(0.1)
            assert len(held) == 4  # the fifth waits for an answer
            for n in range(10):
                await until(lambda n=n: len(held) > n, f"submit {n}")
                held[n].accept(f"{n}")
            assert sorted(int(r.carrier_message_id) for r in await asyncio.gather(*sends)) == list(range(10))
            await conn.close()
    run(case)


def test_a_connection_lost_mid_window_requeues_what_was_in_flight_and_the_bind_comes_back():
    async def case():
        port = next(PORTS)
        held: list[Any] = []
        smsc = Smsc(port, held.append)
        await smsc.__aenter__()
        conn = SmppConnector(carrier(port))
        await conn.start(Sink())
        await bound(smsc, conn)
        sends = [asyncio.ensure_future(conn.submit(sub(i))) for i in range(3)]
        await until(lambda: len(held) == 3, "three outstanding submits")
        await smsc.esmes[0].unbind()  # the SMSC ends the session with three unanswered
        await smsc.__aexit__()
        results = await asyncio.gather(*sends, return_exceptions=True)
        # in flight: retried by egress (transient), so the SMSC may get them twice
        assert all(isinstance(r, TransientError) and "connection closed" in r.reason for r in results), results
        with pytest.raises(ConnectionFailed, match="no SMPP bind up"):
            await conn.submit(sub(9))  # nothing written: egress fails over at once
        async with Smsc(port, lambda ev: ev.accept("5")) as again:
            await bound(again, conn)
            assert (await conn.submit(sub(0))).carrier_message_id == "5"
            await conn.close()
    run(case)


def test_closing_drains_the_window_before_unbinding():
    async def case():
        port = next(PORTS)

        async def late(ev):
            await asyncio.sleep(0.3)
            ev.accept("99")
        async with Smsc(port, late) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(Sink())
            await bound(smsc, conn)
            send = asyncio.ensure_future(conn.submit(sub()))
            await until(lambda: smsc.submits, "the submit")
            await conn.close()
            assert (await send).carrier_message_id == "99"
            await until(lambda: smsc.unbound, "the unbind")
    run(case)


def test_a_receipt_before_the_submit_answer_is_published_under_the_id_the_answer_gives():
    async def case():
        port = next(PORTS)
        sink = Sink()

        async def early(ev):
            # receipt first (decimal id), then the answer (hex id): the order real SMSCs allow
            await smsc.esmes[0].deliver_sm(
                "10690001", b"id:4660 sub:001 dlvrd:001 submit date:2503141726 done date:2503141727 "
                            b"stat:DELIVRD err:000 text:hello", source_addr="8613800138000", esm_class=4)
            ev.accept("0000001234")
        async with Smsc(port, early) as smsc:
            conn = SmppConnector(carrier(port, submit_id_form="hex", receipt_id_form="decimal"))
            await conn.start(sink)
            await bound(smsc, conn)
            res = await conn.submit(sub())
            (topic, dlr), = sink.events
            assert topic == "sms.delivery" and dlr["status"] == "delivered"
            assert dlr["carrier_message_id"] == res.carrier_message_id == "1234"
            await conn.close()
    run(case)


def test_receipts_in_text_form_and_in_tlvs_are_published_after_the_broker_took_them():
    async def case():
        port = next(PORTS)
        sink = Sink()
        async with Smsc(port, lambda ev: ev.accept("ABC")) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(sink)
            await bound(smsc, conn)
            cid = (await conn.submit(sub())).carrier_message_id
            esme = smsc.esmes[0]
            r1 = await esme.deliver_sm("10690001", b"id:0ABC sub:001 dlvrd:000 submit date:2503141726 done "
                                       b"date:2503141727 stat:UNDELIV err:034", source_addr="8613800138000",
                                       esm_class=4)
            r2 = await esme.deliver_sm("10690001", b"", source_addr="8613800138000", esm_class=4, tlvs=[
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, b"abc\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, b"\x02")])
            assert r1.command_status == r2.command_status == 0
            assert [(e["carrier_message_id"], e["status"], e.get("error_code")) for _, e in sink.events] == [
                (cid, "undeliverable", "034"), (cid, "delivered", None)]
            # the broker did not take it: the SMSC is told to try again later
            sink.fail = True
            r3 = await esme.deliver_sm("10690001", b"id:ABC stat:DELIVRD", source_addr="8613800138000",
                                       esm_class=4)
            assert r3.command_status == P.ESME_RX_T_APPN and len(sink.events) == 2
            await conn.close()
    run(case)


@pytest.mark.parametrize("how", ["udh8", "udh16", "sar"])
def test_a_concatenated_mo_is_reassembled_and_published_once_with_the_webhook_schema(how):
    async def case():
        port = next(PORTS)
        sink = Sink()
        async with Smsc(port) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(sink)
            await bound(smsc, conn)
            esme = smsc.esmes[0]
            for seq, piece in ((2, "world"), (1, "hello ")):  # out of order
                kw: dict[str, Any] = {"source_addr": "8613800138000", "source_addr_ton": 1}
                if how == "udh8":
                    body, kw["esm_class"] = bytes((5, 0, 3, 0x42, 2, seq)) + piece.encode(), 0x40
                elif how == "udh16":
                    body, kw["esm_class"] = bytes((6, 8, 4, 0x01, 0x42, 2, seq)) + piece.encode(), 0x40
                else:
                    body = piece.encode()
                    kw["tlvs"] = [smpp34.Tlv(smpp34.TLV_SAR_MSG_REF_NUM, b"\x01\x42"),
                                  smpp34.Tlv(smpp34.TLV_SAR_TOTAL_SEGMENTS, b"\x02"),
                                  smpp34.Tlv(smpp34.TLV_SAR_SEGMENT_SEQNUM, bytes((seq,)))]
                resp = await esme.deliver_sm("10690001", body, **kw)
                assert resp.command_status == 0
            (topic, mo), = sink.events
            assert topic == "sms.inbound"
            assert (mo["from"], mo["to"], mo["text"], mo["parts"]) == ("+8613800138000", "10690001",
                                                                     "hello world", 2)
            await conn.close()
    run(case)


def test_a_single_mo_in_ucs2_is_published_as_the_webhook_schema_says():
    async def case():
        port = next(PORTS)
        sink = Sink()
        async with Smsc(port) as smsc:
            conn = SmppConnector(carrier(port))
            await conn.start(sink)
            await bound(smsc, conn)
            resp = await smsc.esmes[0].deliver_sm("10690001", "查询 7F3K".encode("utf-16-be"), data_coding=8,
                                                  source_addr="8613800138000")
            assert resp.command_status == 0
            (_, mo), = sink.events
            assert (mo["text"], mo["encoding"]) == ("查询 7F3K", "ucs2")
            await conn.close()
    run(case)


# -- a raw SMSC for what smpp34 cannot be asked to do -----------------------------------------

HDR = struct.Struct(">IIII")


async def raw_smsc(port: int, on_pdu: Callable[[int, int, bytes], bytes | None]):
    """A bare TCP SMSC: ``on_pdu(command_id, seq, body)`` returns the frame to answer with."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length, cid, _status, seq = HDR.unpack(await reader.readexactly(16))
                body = await reader.readexactly(length - 16)
                out = on_pdu(cid, seq, body)
                if out:
                    writer.write(out)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


def frame(cid: int, status: int, seq: int, body: bytes = b"") -> bytes:
    return HDR.pack(16 + len(body), cid, status, seq) + body


def test_a_refused_bind_marks_the_carrier_down_with_a_clear_log_line_and_submissions_fail_over(caplog):
    async def case():
        port = next(PORTS)
        server = await raw_smsc(port, lambda cid, seq, body: frame(cid | 0x80000000, 0x0E, seq))
        conn = SmppConnector(carrier(port))
        await conn.start(Sink())
        await until(lambda: "ESME_RINVPASWD" in caplog.text, "the log line")
        assert "carrier smsc: bind refused: ESME_RINVPASWD" in caplog.text
        assert "marked down" in caplog.text
        health = conn.health()
        assert not health["ok"] and "ESME_RINVPASWD" in next(iter(health["binds"].values()))
        with pytest.raises(ConnectionFailed, match="ESME_RINVPASWD"):
            await conn.submit(sub())
        await conn.close()
        server.close()
    run(case)


def test_an_unanswered_enquire_link_drops_the_bind_and_it_binds_again():
    async def case():
        port = next(PORTS)
        binds: list[int] = []

        def on_pdu(cid: int, seq: int, body: bytes) -> bytes | None:
            if cid == P.BIND_TRANSCEIVER:
                binds.append(seq)
                return frame(P.BIND_TRANSCEIVER_RESP, 0, seq, b"RAW\0")
            return None  # enquire_link: silence
        server = await raw_smsc(port, on_pdu)
        conn = SmppConnector(carrier(port, enquire_link_s=0.1, response_timeout_s=0.2))
        await conn.start(Sink())
        await until(lambda: len(binds) >= 2, "a second bind after the silent enquire_link")
        await conn.close()
        server.close()
    run(case)


def test_a_generic_nack_to_a_submission_fails_it_naming_the_status_and_unknown_requests_are_nacked():
    async def case():
        port = next(PORTS)
        seen: list[bytes] = []

        def on_pdu(cid: int, seq: int, body: bytes) -> bytes | None:
            if cid == P.BIND_TRANSCEIVER:
                # and a request Herald does not know (query_sm, 0x03) right after the bind
                return frame(P.BIND_TRANSCEIVER_RESP, 0, seq, b"RAW\0") + frame(0x03, 0, 77, b"1\0\0\0\0")
            if cid == P.SUBMIT_SM:
                return frame(P.GENERIC_NACK, P.ESME_RINVCMDLEN, seq)
            seen.append(HDR.pack(16 + len(body), cid, 0, seq))
            return None
        server = await raw_smsc(port, on_pdu)
        conn = SmppConnector(carrier(port))
        await conn.start(Sink())
        await until(conn.is_up, "the bind")
        with pytest.raises(RejectedByCarrier, match="generic_nack ESME_RINVCMDLEN"):
            await conn.submit(sub())
        await until(lambda: any(HDR.unpack(f)[1] == P.GENERIC_NACK for f in seen), "our generic_nack")
        await conn.close()
        server.close()
    run(case)
