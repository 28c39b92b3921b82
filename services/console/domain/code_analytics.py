"""Verification analytics: queries per day by result, and counterfeit hotspots by region.

Every submission has a row in ``code_queries`` (the verifier's). Days are counted in SQL by
the hour (UTC) and folded into the tenant's local days here, so a day follows the tenant's
time zone without a time-zone database in SQL. Regions come from the number with Google's
libphonenumber data (``phonenumbers``: geocoder and carrier): a mainland China mobile number
resolves to its province by its first seven digits, so hotspots are counted in SQL by
``+86`` and those seven digits (a few thousand groups at most, however many numbers), and each
group is looked up once; other countries' numbers count as their country.

libphonenumber's geocoder holds all of its data in memory once imported (about 100 MB, more
than the rest of the console together), so the console never imports it: ``regions_of`` looks
up the numbers it has not seen in a child process that lives for that one call, and keeps the
answers (a few small objects per prefix).
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.core.db.schemes import Code, CodeBatch, CodeQuery, Product
from services.core.utc import aware

# The results a brand manager reads, and the verifier's outcomes each counts.
RESULTS: dict[str, tuple[str, ...]] = {
    "first": ("genuine",),
    "repeat": ("repeat",),
    "unknown": ("counterfeit",),
    "mistyped": ("mistyped",),
    "locked": ("locked", "ignored"),
}
OUTCOME_RESULT = {o: r for r, outcomes in RESULTS.items() for o in outcomes}
SUSPICIOUS = ("repeat", "counterfeit")  # where counterfeits show: a copied code, an invented one
PREFIX = 10  # "+86" and seven digits: what the mainland China geocoder data is keyed on
_PROVINCE = re.compile(r"^(.+?(?:省|自治区|特别行政区))")
_MUNICIPALITIES = ("北京市", "上海市", "天津市", "重庆市")


@dataclass(frozen=True)
class Region:
    key: str  # stable: "CN-Jiangsu", "US", "unknown"
    name_en: str
    name_zh: str
    carrier_en: str
    carrier_zh: str

    def name(self, locale: str) -> str:
        return self.name_zh if locale.startswith("zh") and self.name_zh else self.name_en

    def carrier(self, locale: str) -> str:
        return self.carrier_zh if locale.startswith("zh") and self.carrier_zh else self.carrier_en


UNKNOWN = Region("unknown", "Unknown", "未知", "", "")


def _province_zh(desc: str) -> str:
    m = _PROVINCE.match(desc)
    if m:
        return m.group(1)
    for city in _MUNICIPALITIES:
        if desc.startswith(city):
            return city
    return desc


def region_of(number: str) -> Region:
    """The region of an E.164 number: a mainland China number's province, else its country.
    Loads the geocoder's data into this process: the console calls ``regions_of`` instead."""
    from phonenumbers import carrier, geocoder  # ~100 MB once imported: see the module's doc

    try:
        n = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return UNKNOWN
    cc = phonenumbers.region_code_for_number(n)
    if not cc:
        return UNKNOWN
    c_en, c_zh = carrier.name_for_number(n, "en"), carrier.name_for_number(n, "zh")
    if cc == "CN":
        en, zh = geocoder.description_for_number(n, "en"), geocoder.description_for_number(n, "zh")
        if en and en not in ("China",):
            province = en.split(", ")[-1]
            return Region(f"CN-{province}", province, _province_zh(zh) or province, c_en, c_zh)
    en = geocoder.country_name_for_number(n, "en") or cc
    zh = geocoder.country_name_for_number(n, "zh") or en
    return Region(cc, en, zh, c_en, c_zh)


def _regions_in_child(numbers: list[str]) -> list[Region]:
    return [region_of(n) for n in numbers]


KNOWN_MAX = 50_000  # answers kept (prefix groups and numbers of drill-downs)
_known: dict[str, Region] = {}
_lookup = threading.Lock()  # one child at a time; a second caller finds the first one's answers


def regions_of(numbers: Iterable[str]) -> dict[str, Region]:
    """``region_of`` of each number, those not looked up before in a short-lived child process
    (spawned: it imports only this module and libphonenumber), so the geocoder's data never
    stays in the console."""
    wanted = list(dict.fromkeys(numbers))
    with _lookup:
        todo = [n for n in wanted if n not in _known]
        if todo:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as child:
                found = child.submit(_regions_in_child, todo).result(timeout=120)
            if len(_known) + len(todo) > KNOWN_MAX:
                _known.clear()
            _known.update(zip(todo, found, strict=True))
        return {n: _known[n] for n in wanted}


def _group_number(prefix: str, length: int) -> str:
    """A number standing for its group: the prefix padded to the group's length."""
    return prefix + "0" * max(0, length - len(prefix))


def _hour_bucket(s: Session):
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", func.timezone("UTC", CodeQuery.received_at)),
                            "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", CodeQuery.received_at)


def per_day(s: Session, tenant_id: str, zone: str, days: int = 30,
            now: datetime | None = None) -> list[tuple[date, dict[str, int]]]:
    """[(local day, {result: queries})] for the last ``days`` days, oldest first, every day present."""
    tz = ZoneInfo(zone)
    now = (now or datetime.now(UTC)).astimezone(tz)
    first = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    hour = _hour_bucket(s)
    rows = s.execute(select(hour, CodeQuery.outcome, func.count())
                     .where(CodeQuery.tenant_id == tenant_id, CodeQuery.received_at >= since)
                     .group_by(hour, CodeQuery.outcome)).all()
    out = {first + timedelta(days=i): dict.fromkeys(RESULTS, 0) for i in range(days)}
    for bucket, outcome, n in rows:
        result = OUTCOME_RESULT.get(outcome)
        if result is None or bucket is None:
            continue
        local = datetime.strptime(bucket, "%Y-%m-%d %H").replace(tzinfo=UTC).astimezone(tz).date()
        if local in out:
            out[local][result] += n
    return sorted(out.items())


def totals(days: list[tuple[date, dict[str, int]]]) -> dict[str, int]:
    t = dict.fromkeys(RESULTS, 0)
    for _d, counts in days:
        for k, v in counts.items():
            t[k] += v
    return t


@dataclass
class Hotspot:
    region: Region
    repeat: int = 0
    unknown: int = 0
    numbers: int = 0
    carriers: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.repeat + self.unknown

    def top_carrier(self, locale: str) -> str:
        if not self.carriers:
            return ""
        return max(self.carriers.items(), key=lambda kv: kv[1])[0]


def _groups(s: Session, tenant_id: str, since: datetime):
    prefix = func.substr(CodeQuery.msisdn, 1, PREFIX)
    length = func.length(CodeQuery.msisdn)
    return s.execute(select(prefix, length, CodeQuery.outcome, func.count(),
                            func.count(CodeQuery.msisdn.distinct()))
                     .where(CodeQuery.tenant_id == tenant_id, CodeQuery.received_at >= since,
                            CodeQuery.outcome.in_(SUSPICIOUS))
                     .group_by(prefix, length, CodeQuery.outcome)).all()


def hotspots(s: Session, tenant_id: str, since: datetime, locale: str = "en") -> list[Hotspot]:
    """Repeat and unknown queries since ``since`` by region, most first."""
    spots: dict[str, Hotspot] = {}
    numbers: dict[str, int] = defaultdict(int)
    groups = _groups(s, tenant_id, since)
    regions = regions_of(_group_number(prefix, length) for prefix, length, *_ in groups)
    for prefix, length, outcome, n, distinct in groups:
        region = regions[_group_number(prefix, length)]
        spot = spots.setdefault(region.key, Hotspot(region))
        if outcome == "repeat":
            spot.repeat += n
        else:
            spot.unknown += n
        numbers[region.key] += distinct  # numbers are counted per result: a number in both counts twice
        c = region.carrier(locale)
        if c:
            spot.carriers[c] = spot.carriers.get(c, 0) + n
    for key, spot in spots.items():
        spot.numbers = numbers[key]
    return sorted(spots.values(), key=lambda h: (-h.total, h.region.name_en))


def region_prefixes(s: Session, tenant_id: str, since: datetime, key: str) -> list[tuple[str, int]]:
    groups = [(prefix, length) for prefix, length, _o, _n, _d in _groups(s, tenant_id, since)]
    regions = regions_of(_group_number(prefix, length) for prefix, length in groups)
    return [(prefix, length) for prefix, length in groups
            if regions[_group_number(prefix, length)].key == key]


@dataclass
class Involved:
    id: int
    received_at: datetime
    msisdn: str
    outcome: str
    batch_id: int | None  # an issued code: its batch and id
    code_id: int | None
    hash_ref: str  # an unknown code: the start of its keyed hash, the same for the same code
    product: str | None
    query_number: int | None
    region: Region


def involved(s: Session, tenant_id: str, since: datetime, key: str, *, before_id: int | None = None,
             limit: int = 50) -> list[Involved]:
    """The repeat and unknown queries from a region, newest first, keyset-paged by id: which
    codes were tried from which numbers."""
    groups = region_prefixes(s, tenant_id, since, key)
    if not groups:
        return []
    prefix = func.substr(CodeQuery.msisdn, 1, PREFIX)
    wanted = sorted({p for p, _len in groups})
    q = (select(CodeQuery, Code.batch_id, Product.name)
         .outerjoin(Code, Code.id == CodeQuery.code_id)
         .outerjoin(CodeBatch, CodeBatch.id == Code.batch_id)
         .outerjoin(Product, Product.id == CodeQuery.product_id)
         .where(CodeQuery.tenant_id == tenant_id, CodeQuery.received_at >= since,
                CodeQuery.outcome.in_(SUSPICIOUS), prefix.in_(wanted))
         .order_by(CodeQuery.id.desc()).limit(limit * 2))
    if before_id is not None:
        q = q.where(CodeQuery.id < before_id)
    out: list[Involved] = []
    rows = s.execute(q).all()
    regions = regions_of(cq.msisdn for cq, _b, _p in rows)
    for cq, batch_id, product in rows:
        region = regions[cq.msisdn]
        if region.key != key:
            continue
        out.append(Involved(cq.id, aware(cq.received_at), cq.msisdn, cq.outcome, batch_id, cq.code_id,
                            (cq.code_hash or b"").hex()[:8], product, cq.query_number, region))
        if len(out) >= limit:
            break
    return out
