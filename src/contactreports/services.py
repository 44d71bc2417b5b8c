"""What the use cases (reports, webhook deliveries) work with: the app's state (`app.state`) holds all of it."""

from __future__ import annotations

from typing import Protocol

from arq.connections import ArqRedis

from contactreports.config import Settings
from contactreports.limits import RateLimits
from contactreports.paging import Cursors
from contactreports.store.database import Database


class Services(Protocol):
    db: Database
    redis: ArqRedis
    settings: Settings
    cursors: Cursors
    rate_limits: RateLimits
