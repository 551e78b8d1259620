"""The web console in a real browser: headless Chromium from Debian, driven by selenium. Signs in
with the deployment's key, starts a payload from the form, sees its log lines arrive while it runs,
stops a sleeping instance, reads a failure's file:line:column, filters the list; a screenshot of
each page is written (paths on stderr, in the folder ACCORD_SCREENSHOTS, by default
.build/console-screenshots)."""
import io
import os
import tempfile
import time
import zipfile

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from accord_conformance import BASE_URL, api_key, get_status, payload, start_ok, uid, wait_for_status, wait_terminal

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHOTS = os.environ.get("ACCORD_SCREENSHOTS", os.path.join(ROOT, ".build", "console-screenshots"))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1360,900",
                 "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's own sandbox refuses to start as root
    profile = tempfile.mkdtemp(prefix="accord-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    # The Debian driver, by path: selenium must not try to download one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    os.makedirs(SHOTS, exist_ok=True)
    open(os.path.join(SHOTS, "screenshots.txt"), "w").close()
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name, description):
    """Saves the page as NAME.png and lists it, with what it shows, in screenshots.txt (printed
    at the end of the run by conftest.py)."""
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    with open(os.path.join(SHOTS, "screenshots.txt"), "a") as index:
        index.write(f"{path}: {description}\n")


def wait(driver, seconds=15):
    return WebDriverWait(driver, seconds, poll_frequency=0.05)


def sign_in(driver):
    driver.get(BASE_URL + "/console")
    field = wait(driver).until(conditions.visibility_of_element_located((By.ID, "api-key")))
    return field


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def rows(driver):
    """The listed instances as (id, status), read in one go: the list re-renders as it updates."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#instance-rows tr')]"
        ".map(row => [row.dataset.id, row.children[1].textContent])")


def test_the_console_signs_in_starts_follows_stops_and_filters(browser):
    driver = browser
    marker = uid()

    # Sign in: a wrong key is refused on the page; the right one opens the list.
    field = sign_in(driver)
    shot(driver, "1-sign-in", "the sign-in page: one password field for the API key")
    field.send_keys("not-a-key")
    driver.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait(driver).until(lambda d: "refused" in text_of(d, "notice"))
    field.clear()
    field.send_keys(api_key())
    driver.find_element(By.CSS_SELECTOR, "#sign-in-form button").click()
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "page-list")))
    assert driver.execute_script("return sessionStorage.getItem('accord.apiKey')") == api_key()
    assert driver.execute_script("return localStorage.length") == 0

    # Start from the form: a payload that logs, sleeps, and logs again.
    archive = os.path.join(SHOTS, "console-payload.zip")
    with open(archive, "wb") as f:
        f.write(payload(f"main:\n- log: \"{marker} first ${{who}}\"\n- ${{sleep.ms(2500)}}\n"
                        f"- log: \"{marker} second\"\n"))
    driver.get(BASE_URL + "/console#/start")
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "start-form")))
    driver.find_element(By.ID, "start-archive").send_keys(archive)
    driver.find_element(By.ID, "start-tags").send_keys(f"console-{marker}")
    driver.find_element(By.ID, "start-arguments").send_keys('{"who": "Ada"}')
    shot(driver, "2-start-form", "the start form filled in: ZIP chosen, tags and JSON arguments")
    driver.find_element(By.CSS_SELECTOR, "#start-form button").click()
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "page-instance")))
    iid = text_of(driver, "instance-id")
    assert len(iid) == 36

    # The first line shows while the instance still runs; the second follows, then the status.
    wait(driver).until(lambda d: f"{marker} first Ada" in text_of(d, "log"))
    assert get_status(iid)["status"] == "RUNNING", "the first line should show while the instance runs"
    # The status the stream pushed as the instance moved (the page asks nothing on a timer).
    wait(driver).until(lambda d: text_of(d, "instance-status") == "RUNNING")
    assert f"{marker} second" not in text_of(driver, "log")
    shot(driver, "3-instance-running", "a RUNNING instance: its first log line arrived live, Stop shown")
    wait(driver).until(lambda d: f"{marker} second" in text_of(d, "log"))
    wait(driver).until(lambda d: text_of(d, "instance-status") == "FINISHED")
    wait(driver).until(lambda d: "FINISHED" in text_of(d, "timeline"))
    assert [line.split("] ", 1)[1] for line in text_of(driver, "log").splitlines()] == [
        f"{marker} first Ada", f"{marker} second"]
    assert not driver.find_element(By.ID, "stop").is_displayed()
    shot(driver, "4-instance-finished", "the same instance FINISHED: full timeline, both lines, out")

    # Stop a sleeping instance from its page.
    sleeper = start_ok(payload(f"main:\n- log: \"{marker} sleeping\"\n- ${{sleep.ms(60000)}}\n"))
    wait_for_status(sleeper, ["RUNNING"])
    driver.get(f"{BASE_URL}/console#/instance/{sleeper}")
    wait(driver).until(lambda d: f"{marker} sleeping" in text_of(d, "log"))
    stop = wait(driver).until(conditions.element_to_be_clickable((By.ID, "stop")))
    stop.click()
    wait(driver).until(lambda d: text_of(d, "instance-status") == "CANCELLED")
    assert wait_terminal(sleeper)["status"] == "CANCELLED"
    shot(driver, "5-instance-stopped", "a sleeping instance after its Stop button: CANCELLED")

    # A failure names its file, line and column.
    failing = start_ok(payload("main:\n- log: working\n- throw: \"disk is full\"\n"))
    assert wait_terminal(failing)["status"] == "FAILED"
    driver.get(f"{BASE_URL}/console#/instance/{failing}")
    wait(driver).until(lambda d: d.find_element(By.ID, "failure").is_displayed())
    wait(driver).until(lambda d: text_of(d, "failure-location") == "processes/main.yml:3:3")
    assert "disk is full" in text_of(driver, "failure-message")
    shot(driver, "6-instance-failed", "a FAILED instance: the failure with processes/main.yml:3:3")

    # The list filters by status and tag, and shows new instances by itself.
    driver.get(BASE_URL + "/console#/")
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "page-list")))
    driver.find_element(By.ID, "filter-tag").send_keys(f"console-{marker}")
    wait(driver).until(lambda d: [row[0] for row in rows(d)] == [iid])
    driver.find_element(By.ID, "filter-tag").clear()
    driver.find_element(By.ID, "filter-tag").send_keys(" ")  # cleared: every tag
    Select(driver.find_element(By.ID, "filter-status")).select_by_visible_text("CANCELLED")
    # The sleeper is in the unfiltered list too: wait for the filtered one, not just for the sleeper.
    wait(driver).until(lambda d: (lambda listed: sleeper in [row[0] for row in listed]
                                  and {row[1] for row in listed} == {"CANCELLED"})(rows(d)))
    Select(driver.find_element(By.ID, "filter-status")).select_by_visible_text("any")
    later = start_ok(payload("main:\n- log: later\n"))
    wait(driver, 10).until(lambda d: later in [row[0] for row in rows(d)])
    shot(driver, "7-list", "the instance list, unfiltered, after a new instance appeared by itself")

    # Signing out forgets the key.
    driver.find_element(By.ID, "sign-out").click()
    wait(driver).until(conditions.visibility_of_element_located((By.ID, "page-sign-in")))
    assert driver.execute_script("return sessionStorage.getItem('accord.apiKey')") is None


def test_the_console_refuses_to_be_framed_and_runs_only_its_own_scripts(browser):
    import requests
    resp = requests.get(BASE_URL + "/console", timeout=10)
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
