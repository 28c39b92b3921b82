"""Reply texts of the verifier, in Chinese and English, overridable per brand.

A brand's ``templates`` column holds ``{"zh": {kind: text}, "en": {kind: text}}``; a kind it
does not override, or an override with an unknown placeholder, falls back to the default here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

DEFAULTS: dict[str, dict[str, str]] = {
    "en": {
        "genuine": "{brand}: your {product} is genuine. Thank you for checking. {points_note}",
        "points_note": "You earned {points} points.",
        "repeat": ("{brand}: this code has been checked {count} times, first on {first_at} by "
                   "{first_number}. If that was not you, the product may be counterfeit."),
        "repeat_self": ("{brand}: you checked this code before (first on {first_at}); it has been "
                        "checked {count} times, all from your number."),
        "counterfeit": ("{brand}: this code is not one of ours. The product may be counterfeit; "
                        "please keep the pack and your receipt."),
        "mistyped": "{brand}: we could not read that code. Please check the code and send it again.",
        "locked": ("{brand}: too many invalid codes from your number. Checks are paused for "
                   "{minutes} minutes."),
        "prize": ("{brand}: congratulations, you won {prize}! Card number {card}, password "
                  "{password}. {instructions}"),
    },
    "zh": {
        "genuine": "{brand}：您购买的{product}是正品，感谢您的查询。{points_note}",
        "points_note": "您获得{points}积分。",
        "repeat": ("{brand}：该防伪码已被查询{count}次，首次查询时间{first_at}，首次查询号码"
                   "{first_number}。如非本人查询，谨防假冒。"),
        "repeat_self": "{brand}：您已查询过该防伪码（首次{first_at}），共查询{count}次，均为本机号码。",
        "counterfeit": "{brand}：该防伪码不存在，谨防假冒，请保留包装及购物凭证。",
        "mistyped": "{brand}：无法识别该防伪码，请核对后重新发送。",
        "locked": "{brand}：您的号码发送无效防伪码次数过多，查询已暂停{minutes}分钟。",
        "prize": "{brand}：恭喜您获得{prize}！卡号{card}，密码{password}。{instructions}",
    },
}


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def language_for(setting: str, msisdn: str) -> str:
    """``zh`` or ``en``: the brand's choice, or by number when it is ``auto`` (+86 -> zh)."""
    if setting in ("zh", "en"):
        return setting
    return "zh" if msisdn.startswith("+86") else "en"


def mask(msisdn: str | None) -> str:
    """+8613812345678 -> 138****5678; other numbers keep their first and last four digits."""
    if not msisdn:
        return "****"
    if msisdn.startswith("+86") and len(msisdn) == 14:
        national = msisdn[3:]
        return f"{national[:3]}****{national[-4:]}"
    if len(msisdn) <= 8:
        return "****" + msisdn[-2:]
    return f"{msisdn[:len(msisdn) - 8]}****{msisdn[-4:]}"


def local_time(at: datetime | None, tz: str, lang: str) -> str:
    if at is None:
        return "?"
    try:
        zone = ZoneInfo(tz)
    except Exception:  # noqa: BLE001 - a bad zone name in a brand row must not stop replies
        zone = ZoneInfo("UTC")
    local = at.astimezone(zone)
    if lang == "zh":
        return local.strftime("%Y-%m-%d %H:%M")
    offset = local.strftime("%z")  # +0800; abbreviations such as CST are ambiguous
    zone_name = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
    return f"{local.strftime('%Y-%m-%d %H:%M')} {zone_name}"


def render(kind: str, lang: str, overrides: dict[str, Any] | None, **values: Any) -> str:
    """The text of ``kind`` in ``lang`` with ``values`` filled in."""
    custom = ((overrides or {}).get(lang) or {}).get(kind)
    default = DEFAULTS[lang][kind]
    if custom:
        try:
            return custom.format_map(_Blank(values)).strip()
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            # Only the kind is logged: values can hold a card password.
            log.warning("brand template %s/%s does not render; using the default", lang, kind)
    return default.format_map(_Blank(values)).strip()
