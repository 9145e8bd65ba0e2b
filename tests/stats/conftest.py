"""Statistics tests write each beacon at once instead of batching it in a background thread."""

from __future__ import annotations

import os

from vern.core.config import stats_settings

os.environ["VERN_STATS_FLUSH_INTERVAL_MS"] = "0"
stats_settings.cache_clear()
