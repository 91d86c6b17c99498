"""Take the README's screenshots of a running search in headless Chromium (a developer's tool:
`pip install selenium`, and Debian's `chromium` and `chromium-driver`; nothing is downloaded).

    python docs/watching/screenshots.py dashboard http://127.0.0.1:8265 docs/watching/
    python docs/watching/screenshots.py tensorboard http://localhost:6006 docs/watching/
    python docs/watching/screenshots.py optuna http://127.0.0.1:8080 docs/watching/   # run_search.py --dashboard

The dashboard's token is read where Ray reads it (search.ray_session.auth_token_file) and typed
into the dashboard's login prompt, as a user does."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project's packages, from anywhere

from search.ray_session import auth_token_file  # noqa: E402

SETTLE_SECONDS = 8  # pages load their data after the first render


def browser(width: int = 1800, height: int = 800) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    flags = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
    flags += ("--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={width},{height}")
    for argument in flags:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def shoot(driver: webdriver.Chrome, url: str, path: Path) -> None:
    driver.get(url)
    time.sleep(SETTLE_SECONDS)
    driver.save_screenshot(str(path))
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def dashboard(url: str, out: Path) -> None:
    driver = browser()
    try:
        driver.get(f"{url}/#/actors")
        time.sleep(SETTLE_SECONDS)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(auth_token_file().read_text().strip())
        driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
        shoot(driver, f"{url}/#/actors", out / "dashboard-actors.png")
        shoot(driver, f"{url}/#/jobs", out / "dashboard-jobs.png")
    finally:
        driver.quit()


def tensorboard(url: str, out: Path) -> None:
    driver = browser()
    try:
        driver.get(f"{url}/#timeseries")
        time.sleep(SETTLE_SECONDS)
        driver.find_element(By.CSS_SELECTOR, "input[placeholder^='Filter tags']").send_keys("valid_clip_acc|loss")
        for close in filter(
            WebElement.is_displayed, driver.find_elements(By.CSS_SELECTOR, "button[aria-label*=Close]")
        ):
            close.click()  # the settings pane
        time.sleep(SETTLE_SECONDS)
        driver.save_screenshot(str(out / "tensorboard-scalars.png"))
        shoot(driver, f"{url}/#hparams", out / "tensorboard-hparams.png")
    finally:
        driver.quit()


def optuna(url: str, out: Path) -> None:
    """optuna-dashboard's pages of the first study: the trials by state (a pruned one opened, with
    its rung and cutoff), the history with importance, and every trial's curve."""
    driver = browser(height=1000)
    try:
        study = f"{url}/dashboard/studies/1"
        driver.get(f"{study}/trials")
        time.sleep(SETTLE_SECONDS)
        for pruned in driver.find_elements(By.XPATH, "//span[normalize-space()='Pruned']")[:1]:
            pruned.click()
        time.sleep(2)
        driver.save_screenshot(str(out / "optuna-dashboard-trials.png"))
        shoot(driver, study, out / "optuna-dashboard-history.png")
        for heading in driver.find_elements(By.XPATH, "//h6[normalize-space()='Intermediate values']")[:1]:
            driver.execute_script("arguments[0].scrollIntoView()", heading)
        time.sleep(2)
        driver.save_screenshot(str(out / "optuna-dashboard-curves.png"))
    finally:
        driver.quit()


if __name__ == "__main__":
    view, address, folder = sys.argv[1:4]
    {"dashboard": dashboard, "tensorboard": tensorboard, "optuna": optuna}[view](address.rstrip("/"), Path(folder))
