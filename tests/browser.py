"""Drive Debian's Chromium (package ``chromium`` + ``chromium-driver``) with Selenium for the dashboard tests.

No browser download and no network: Selenium is given both binaries, and Selenium Manager is told to stay
offline. In CI (CI=true) a missing browser is a failure; locally the test skips with the install command.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

INSTALL = "apt-get install chromium chromium-driver (deploy/install.sh does it when run as root)"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def chromium_paths() -> tuple[str, str]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    if not binary or not driver:
        msg = f"the dashboard's browser tests need Chromium and its driver: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return binary, driver


def start_chromium() -> Any:
    binary, driver = chromium_paths()
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for f in FLAGS:
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def console_errors(driver: Any) -> list[str]:
    """SEVERE entries of the browser console since the last call (the log is drained on read)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
