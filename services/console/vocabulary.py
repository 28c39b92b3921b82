"""Words the console shows from data (roles, statuses, kinds), listed so that the catalogue
extraction finds them; templates translate them with ``_(value)``."""


def _(message: str) -> str:
    return message


ROLES = [_("owner"), _("operator"), _("analyst"), _("platform")]
CAMPAIGN_KINDS = [_("notification"), _("greeting"), _("promotion"), _("survey"), _("inquiry"),
                  _("on_demand"), _("subscription")]
CAMPAIGN_STATUSES = [_("draft"), _("scheduled"), _("running"), _("paused"), _("active"),
                     _("completed"), _("cancelled")]
MESSAGE_STATUSES = [_("accepted"), _("sent"), _("delivered"), _("failed"), _("expired"),
                    _("suppressed"), _("queued")]
