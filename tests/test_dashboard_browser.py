"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromium-driver (no browser download), against `pingjia serve` as a process and a
virtual device (`pingjia sim --collector`). Log in; a rating made on the device appears
without a reload; filter (a bad one shows its message); download CSV and XLSX; open
the 差评's case and record its callback (refused to a viewer, with the reason); the wall
screen (1920x1080) and the phone (390x844, one column) layouts. PINGJIA_SCREENSHOTS=DIR
also keeps the two screenshots there (docs/ has the README's)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30  # the longest any wait in the browser lasts
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
HALL = timezone(timedelta(hours=8))


def serving_word(now: datetime) -> str:
    """What a window with a badge in shows at this hall time under the default hours
    (Monday to Friday 09:00-17:30): 服务中 inside them, 延时服务 outside (the test runs at
    the wall clock's time, whatever it is)."""
    inside = now.weekday() < 5 and (9, 0) <= (now.hour, now.minute) < (17, 30)
    return "服务中" if inside else "延时服务"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (make setup installs them)")


class Browser:
    """One headless chromium with a fresh profile and a download folder of its own."""

    def __init__(self, tmp: Path, width: int, height: int, mobile: bool = False):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.downloads = tmp / "downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={tmp / 'profile'}")
        opts.add_argument(f"--window-size={width},{height}")
        opts.add_experimental_option("prefs", {
            "download.default_directory": str(self.downloads),
            "download.prompt_for_download": False})
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(WAIT_S)
        self.d.set_script_timeout(WAIT_S)
        self.d.execute_cdp_cmd("Page.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(self.downloads)})
        # the viewport itself (a window's frame would take some of --window-size)
        self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def wait(self, what, message: str):
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        # a navigation in between replaces the elements: look again
        return WebDriverWait(self.d, WAIT_S, poll_frequency=0.2, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException)).until(what, message)

    def text(self, element_id: str) -> str:
        return self.d.find_element("id", element_id).text

    def wait_text(self, element_id: str, *words: str) -> None:
        self.wait(lambda d: all(w in d.find_element("id", element_id).text for w in words),
                  f"#{element_id} never showed {words}")

    def download(self, name_end: str) -> bytes:
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end:
            done = [p for p in self.downloads.iterdir() if p.name.endswith(name_end)]
            if done:
                return done[0].read_bytes()
            time.sleep(0.2)
        raise AssertionError(f"no {name_end} downloaded: {list(self.downloads.iterdir())}")

    def quit(self) -> None:
        self.d.quit()


@pytest.fixture
def browser(tmp_path):
    made: list[Browser] = []

    def start(width: int, height: int, mobile: bool = False) -> Browser:
        b = Browser(tmp_path / f"chromium{len(made)}", width, height, mobile)
        made.append(b)
        return b

    yield start
    for b in made:
        b.quit()


def keep_screenshot(b: Browser, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    b.d.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = os.environ.get("PINGJIA_SCREENSHOTS")
    if out:
        shutil.copy(shot, Path(out) / name)
    return shot


def log_in(b: Browser, base: str, name: str, token: str, then: str) -> None:
    b.d.get(base + "/login")
    b.d.find_element("name", "name").send_keys(name)
    b.d.find_element("name", "token").send_keys(token)
    b.d.find_element("css selector", "form.login button").click()
    b.wait(lambda d: d.current_url.rstrip("/") == base, "the login did not go through")
    b.d.get(base + then)


def record_callback(b: Browser, refused: str | None) -> None:
    """Open the first case's dialog and record a callback; refused: the message expected
    instead (then the dialog is closed again)."""
    b.wait_text("cases", "T-1", "待回访")
    b.d.find_element("css selector", "#cases button.case-open").click()
    b.wait(lambda d: d.find_element("id", "case-dialog").is_displayed(), "no case dialog")
    assert "T-1" in b.text("case-info") and "服务态度不好" in b.text("case-info")
    form = b.d.find_element("id", "case-form")
    form.find_element("name", "text").send_keys("已电话回访，致歉")
    form.find_element("css selector", "button[type=submit]").click()
    if refused:
        b.wait_text("case-error", refused)
        b.d.find_element("id", "case-close").click()


def test_dashboard_in_chromium(tmp_path, db_url, pingjia_serve, cli, sim_proc, browser):
    _proc, port = pingjia_serve(db_url)
    base = f"http://127.0.0.1:{port}"
    p = cli("user", "add", "amt", "--role", "viewer", "--db", db_url)
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    now = datetime.now(HALL).replace(microsecond=0)
    day = now.date().isoformat()

    b = browser(1920, 1080)
    log_in(b, base, "amt", token, f"/?from={day}&to={day}")
    b.wait_text("windows", "还没有设备同步过")
    b.wait(lambda d: d.find_element("id", "live").text == "实时", "the live stream never opened")
    b.d.execute_script("window.pingjiaKept = 'same page'")  # gone if the page reloads

    # a rating on the virtual device, synced to this collector
    sim = sim_proc(db_url, "--collector", base, "--device", "b01-1", "--start", now.isoformat())
    for line in ("badge 0A1B2C3D", "invite T-1", "key 4", "key 2", "invite T-2", "key 1"):
        sim.say(line)
    assert sim.say("sync")[0].startswith("ok: sent")
    b.wait_text("bad", "T-1", "服务态度不好", "SB0101")
    b.wait_text("windows", "B01", serving_word(now), "张伟")
    assert b.text("t-ratings") == "2" and b.text("t-satisfied") == "50.0%"
    assert b.d.execute_script("return window.pingjiaKept") == "same page"
    assert b.d.execute_script("return !!window.echarts")  # the bundled file, served here
    b.wait(lambda d: d.find_element("id", "heat-chart").is_displayed()
           and d.find_elements("css selector", "#heat-chart canvas"), "no heat map chart")
    # a second window, its staff on 请稍候 (for the screenshots: more than one of each)
    b02 = sim_proc(db_url, "--collector", base, "--device", "b02-1", "--window", "B02",
                   "--start", now.isoformat())
    for line in ("badge 12131415", "invite T-5", "key 1", "invite T-6", "key 2", "wait"):
        b02.say(line)
    assert b02.say("sync")[0].startswith("ok: sent")
    b.wait_text("windows", "B02", "请稍候", "陈静")
    assert b.text("t-ratings") == "4"
    keep_screenshot(b, tmp_path, "dashboard-wall.png")
    assert b.text("live") == "实时"  # the stream lived on past limits.py's body deadline

    # filters: an unknown window is a message on the page; a good one is the query string
    form = b.d.find_element("id", "filters")
    form.find_element("name", "window").send_keys("B99")
    form.find_element("css selector", "button[type=submit]").click()
    b.wait(lambda d: "window=B99" in d.current_url
           and d.find_element("id", "error").is_displayed(), "no error shown")
    assert "no window 'B99'" in b.text("error")
    b.d.get(f"{base}/?from={day}&to={day}&window=B01&staff=SB0101")
    b.wait_text("staff", "SB0101")
    assert b.text("error") == "" and "刘洋" not in b.text("staff")

    # the shown data as files, through the page's buttons
    b.d.find_element("id", "csv").click()
    text = b.download(".csv").decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert ["B01", serving_word(now), "SB0101", "张伟"] == rows[rows.index(["窗口"]) + 2][:4]
    assert any(r[4:6] == ["T-1", "服务态度不好"] for r in rows if len(r) == 6)
    b.d.find_element("id", "xlsx").click()
    wb = load_workbook(io.BytesIO(b.download(".xlsx")))
    assert [r[4] for r in wb["差评"].iter_rows(min_row=3, values_only=True)] == ["T-1"]

    # the printable evaluation of the hall's quarter: the PDF through the page's form
    period = b.d.find_element("id", "evaluation").find_element("name", "period")
    period.clear()
    quarter = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    period.send_keys(quarter)
    b.d.find_element("id", "evaluation-pdf").click()
    pdf = PdfReader(io.BytesIO(b.download(".pdf")))
    assert "B01" in pdf.pages[0].extract_text()

    # the 差评's case: a viewer may look but not act; an admin records the callback
    b.d.get(f"{base}/?from={day}&to={day}")
    record_callback(b, "the role viewer may not do this")
    p = cli("user", "add", "boss", "--role", "admin", "--db", db_url)
    assert p.returncode == 0, p.stderr
    log_in(b, base, "boss", p.stdout.strip(), f"/?from={day}&to={day}")
    record_callback(b, None)
    b.wait_text("case-log", "回访 (boss): 已电话回访，致歉")
    assert "已回访" in b.text("case-title")
    b.d.find_element("id", "case-close").click()
    b.wait_text("cases", "已回访")  # the table redrawn, no reload
    assert "待处理 1 · 逾期 0" in b.text("case-counts")

    # the phone: one column, nothing wider than the screen (tables scroll in their card)
    phone = browser(390, 844, mobile=True)
    log_in(phone, base, "amt", token, f"/?from={day}&to={day}")
    phone.wait_text("bad", "T-1")
    # its stream gets in: the wall's pages gave theirs back as they were left (pagehide)
    phone.wait(lambda d: d.find_element("id", "live").text == "实时", "no live stream")
    cols = phone.d.execute_script(
        "return getComputedStyle(document.getElementById('dash')).gridTemplateColumns")
    assert len(cols.split()) == 1, cols
    assert phone.d.execute_script("return document.documentElement.scrollWidth") <= 390
    keep_screenshot(phone, tmp_path, "dashboard-phone.png")
