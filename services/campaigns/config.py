"""The campaigns processor's own tuning knobs, beside the shared Settings (``HERALD_CAMPAIGNS_*``).

They live here rather than in services/core/settings.py because no other processor reads them;
each has a default that works on a fresh machine.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CampaignsConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_CAMPAIGNS_", extra="ignore")

    chunk_size: int = Field(500, ge=1, le=5000,
                            description="Audience members decided, sent and committed per step")
    tick_s: float = Field(0.5, gt=0, description="How often the engine looks for due work when idle")
    lease_s: float = Field(15.0, gt=0,
                           description="How long a worker owns a running campaign without renewing it")
    greeting_check_s: float = Field(900.0, gt=0,
                                    description="Default interval between greeting passes")
    http_timeout_s: float = Field(3.0, gt=0,
                                  description="Client timeout for tenant endpoints (each has its own too)")
    inquiry_concurrency: int = Field(4, ge=1, le=100,
                                     description="Tenant endpoint calls in flight at once, per tenant")
    inquiry_backlog: int = Field(1000, ge=1,
                                 description="Endpoint inquiries one worker holds before it stops "
                                             "consuming")
    inquiry_resume_after_s: float = Field(300.0, gt=0,
                                          description="Age at which an unanswered endpoint inquiry is "
                                                      "asked again (its worker presumed gone)")
    default_rate_per_second: float = Field(50.0, gt=0,
                                           description="Send rate of a tenant without campaign settings")


@lru_cache(maxsize=1)
def get_config() -> CampaignsConfig:
    return CampaignsConfig()
