"""Browser, operating system and device class from a user agent - coarse on purpose.

Only these three words are kept; the user agent itself is used in the visitor hash and dropped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

BOT_MARKERS = ("bot", "crawl", "spider", "slurp", "facebookexternalhit", "preview", "monitor")


class Agent(NamedTuple):
    browser: str
    os: str
    device: str
    bot: bool


def _browser(ua: str) -> str:
    for marker, name in (
        ("Edg/", "Edge"), ("EdgA/", "Edge"), ("OPR/", "Opera"), ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"), ("CriOS/", "Chrome"), ("Chrome/", "Chrome"),
        ("Chromium/", "Chrome"),
    ):
        if marker in ua:
            return name
    if "Safari/" in ua and "Version/" in ua:
        return "Safari"
    return "Other"


def _os(ua: str) -> str:
    for marker, name in (
        ("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iOS"), ("iPod", "iOS"),
        ("Android", "Android"), ("CrOS", "ChromeOS"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ):
        if marker in ua:
            return name
    return "Other"


def _device(ua: str) -> str:
    if "iPad" in ua or "Tablet" in ua or ("Android" in ua and "Mobile" not in ua):
        return "tablet"
    if "Mobi" in ua or "iPhone" in ua or "iPod" in ua:
        return "mobile"
    return "desktop"


@lru_cache(maxsize=8192)
def classify(ua: str) -> Agent:
    lowered = ua.lower()
    bot = not ua or any(marker in lowered for marker in BOT_MARKERS)
    return Agent(_browser(ua), _os(ua), _device(ua), bot)
