"""Every string the console shows has its Chinese translation, and the catalogues load."""

from babel.messages.extract import extract_from_dir

from services.console import i18n

METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def console_strings() -> dict[str, str]:
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            "services/console", method_map=METHODS, options_map=OPTIONS):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def test_every_console_string_has_a_chinese_translation():
    zh = i18n.translations("zh_Hans")
    missing = [f"{where}: {msgid!r}" for msgid, where in sorted(console_strings().items())
               if zh.ugettext(msgid) == msgid and not msgid.strip().isdigit()]
    assert not missing, "untranslated:\n" + "\n".join(missing)


def test_placeholders_survive_translation():
    import re

    zh = i18n.translations("zh_Hans")
    for msgid in console_strings():
        names = set(re.findall(r"%\((\w+)\)s", msgid))
        assert set(re.findall(r"%\((\w+)\)s", zh.ugettext(msgid))) == names, msgid
