"""The one table of compliance words: opt-out, opt-in and help, as carriers and regulators expect
them in mainland China and the English-speaking markets.

The router answers these itself on every number, before any tenant rule; tenancy refuses a
keyword rule or campaign keyword that one of them would shadow. Lookalikes that are not
opt-outs (UNSUB is campaigns' leave-a-topic word, 取消订单 is "cancel my order", YES and N are
survey answers) are kept out on purpose and listed in ``NOT_COMPLIANCE`` so tests hold the line.

Matching (``match``): the text is NFKC, upper case, edge punctuation stripped, split in words.
- A Latin phrase matches the text's first words ("STOP please", "opt out ACME").
- A Chinese phrase matches the whole text with spaces and punctuation removed ("取消 订阅！"),
  or the first word ("退订 ACME"); never a prefix, so 退订单 or 取消订单 stay ordinary texts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

OPT_OUT, OPT_IN, HELP = "opt_out", "opt_in", "help"


@dataclass(frozen=True)
class Phrase:
    text: str  # as matched: NFKC, upper case, words separated by one space
    kind: str  # opt_out | opt_in | help
    market: str  # CN (mainland China) | EN (US, CA, UK, AU, NZ, IE)
    why: str  # where the phrasing comes from
    # True: only the phrase alone (or with a polite word, or a tenant's keyword after it) counts;
    # for words that also start ordinary sentences ("cancel my order", "T shirt", "R u open").
    alone: bool = False


PHRASES: tuple[Phrase, ...] = (
    # -- mainland China: MIIT rules for commercial SMS require a working unsubscribe; carriers'
    # templates print "回T退订", "退订回TD", "拒收请回复R", and people answer in their own words.
    Phrase("退订", OPT_OUT, "CN", "the standard word in every footer"),
    Phrase("TD", OPT_OUT, "CN", "退订回TD footer"),
    Phrase("T", OPT_OUT, "CN", "回T退订 footer", alone=True),
    Phrase("R", OPT_OUT, "CN", "拒收请回复R footer", alone=True),
    Phrase("取消订阅", OPT_OUT, "CN", "cancel the subscription"),
    Phrase("退订短信", OPT_OUT, "CN", "unsubscribe from the texts"),
    Phrase("取消短信", OPT_OUT, "CN", "cancel the texts"),
    Phrase("拒收", OPT_OUT, "CN", "refuse to receive"),
    Phrase("拒收短信", OPT_OUT, "CN", "refuse the texts"),
    Phrase("取消", OPT_OUT, "CN", "bare cancel, answered to a marketing text", alone=True),
    Phrase("退出", OPT_OUT, "CN", "quit", alone=True),
    Phrase("我要退订", OPT_OUT, "CN", "I want to unsubscribe"),
    Phrase("请退订", OPT_OUT, "CN", "please unsubscribe"),
    Phrase("退订谢谢", OPT_OUT, "CN", "unsubscribe, thanks"),
    Phrase("不要再发", OPT_OUT, "CN", "do not send again"),
    Phrase("别再发了", OPT_OUT, "CN", "stop sending"),
    Phrase("停止发送", OPT_OUT, "CN", "stop sending"),
    # -- English markets: CTIA handbook and the FCC's 2024 revocation rule (any of STOP, QUIT,
    # END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE), plus STOP ALL as carriers' platforms accept.
    Phrase("STOP", OPT_OUT, "EN", "CTIA, UK/AU/NZ codes of practice"),
    Phrase("STOPALL", OPT_OUT, "EN", "carrier platforms"),
    Phrase("STOP ALL", OPT_OUT, "EN", "carrier platforms"),
    Phrase("UNSUBSCRIBE", OPT_OUT, "EN", "CTIA, FCC 2024"),
    Phrase("CANCEL", OPT_OUT, "EN", "CTIA, FCC 2024", alone=True),
    Phrase("END", OPT_OUT, "EN", "CTIA, FCC 2024", alone=True),
    Phrase("QUIT", OPT_OUT, "EN", "CTIA, FCC 2024", alone=True),
    Phrase("REVOKE", OPT_OUT, "EN", "FCC 2024", alone=True),
    Phrase("OPT OUT", OPT_OUT, "EN", "FCC 2024"),
    Phrase("OPTOUT", OPT_OUT, "EN", "FCC 2024, typed as one word"),
    Phrase("OPT-OUT", OPT_OUT, "EN", "FCC 2024, typed with a dash"),
    # -- opting back in
    Phrase("订阅", OPT_IN, "CN", "subscribe", alone=True),
    Phrase("恢复订阅", OPT_IN, "CN", "resume the subscription"),
    Phrase("重新订阅", OPT_IN, "CN", "subscribe again"),
    Phrase("START", OPT_IN, "EN", "CTIA", alone=True),
    Phrase("UNSTOP", OPT_IN, "EN", "CTIA"),
    Phrase("OPT IN", OPT_IN, "EN", "CTIA"),
    # -- help
    Phrase("帮助", HELP, "CN", "help"),
    Phrase("HELP", HELP, "EN", "CTIA"),
    Phrase("?", HELP, "EN", "a bare question mark", alone=True),
)

# Texts that look like compliance words and are not: each stays an ordinary text.
NOT_COMPLIANCE: tuple[str, ...] = (
    "UNSUB",  # campaigns: leave one subscription topic
    "YES", "Y", "N", "NO",  # survey answers
    "INFO",  # tenants' own keyword (CTIA lists it for help; here it is a tenant keyword)
    "STOPS", "TOP", "TDS", "TT", "STOPPED",
    "取消订单",  # cancel my order
    "退订单",  # return an order
    "退款", "退货",  # refund, return goods
    "订单",  # order
    "订阅号",  # a WeChat subscription account
)

# Words that may follow an "alone" phrase without making it an ordinary sentence.
FILLERS = frozenset({"PLEASE", "PLS", "PLZ", "NOW", "THANKS", "THX", "谢谢", "请"})

_BY_TEXT = {p.text: p for p in PHRASES}
_LONGEST_FIRST = sorted(PHRASES, key=lambda p: -len(p.text.split()))


def is_cjk(s: str) -> bool:
    return any(unicodedata.east_asian_width(c) in "WF" for c in s)


def phrase_of(word: str) -> Phrase | None:
    """The compliance phrase a keyword is (NFKC, case-insensitive), or None."""
    w = " ".join(unicodedata.normalize("NFKC", word).upper().split())
    return _BY_TEXT.get(w)


def match(words: tuple[str, ...], compact: str,
          names_tenant: Callable[[str], bool] = lambda w: False) -> tuple[Phrase, int] | None:
    """The compliance phrase a text is, and how many of its words the phrase took (the next word
    may name a tenant on a shared number), or None. ``words`` are the text's upper-case words
    with edge punctuation stripped; ``compact`` is the whole text with spaces and punctuation
    removed; ``names_tenant`` tells whether a word is a tenant's keyword on this number."""
    p = _BY_TEXT.get(compact)
    if p is not None and is_cjk(p.text):
        return p, len(words)
    for p in _LONGEST_FIRST:
        pw = tuple(p.text.split())
        if words[:len(pw)] != pw:
            continue
        rest = words[len(pw):]
        if p.alone and rest and not (len(rest) == 1 and (rest[0] in FILLERS
                                                         or names_tenant(rest[0]))):
            continue
        return p, len(pw)
    return None
