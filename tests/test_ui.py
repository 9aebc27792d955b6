"""The dashboard in real headless Chromium (Debian's chromium and chromium-driver, via selenium).

Screenshots of every page go to tests/artifacts/.
"""

import shutil
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def browser(live, tmp_path_factory):
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=DriverService(shutil.which("chromedriver")))
    downloads = tmp_path_factory.mktemp("downloads")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    ARTIFACTS.mkdir(exist_ok=True)
    driver.get(live.url + "/ui/")
    wait(driver).until(ready.presence_of_element_located((By.ID, "username")))
    screenshot(driver, "01-sign-in")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("alice-pw")
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait(driver).until(ready.presence_of_element_located((By.ID, "jobs")))
    yield driver
    driver.quit()


def wait(driver, seconds=30):
    return WebDriverWait(driver, seconds)


def screenshot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_token_is_kept_in_session_storage_not_cookies(browser):
    assert browser.execute_script("return sessionStorage.getItem('gaas-token')")
    assert browser.get_cookies() == []


def test_submit_from_generated_form_and_watch_it_finish(browser, live):
    browser.get(live.url + "/ui/#/discipline/WriteTag")
    box = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-input='delay']")))
    assert browser.find_element(By.CSS_SELECTOR, "[data-input='tag']").get_attribute("value") == "[0]"
    box.clear()
    box.send_keys("[2]")
    tag = browser.find_element(By.CSS_SELECTOR, "[data-input='tag']")
    tag.clear()
    tag.send_keys("[42]")
    screenshot(browser, "02-discipline-form")
    browser.find_element(By.ID, "run-async").click()
    wait(browser).until(ready.url_contains("#/job/"))
    job_id = browser.current_url.rsplit("/", 1)[1]
    browser.find_element(By.LINK_TEXT, "Jobs").click()
    row = f"tr[data-job='{job_id}'] .status"
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert browser.find_element(By.CSS_SELECTOR, row).text in ("pending", "running")
    screenshot(browser, "03-jobs-running")
    marker = browser.execute_script("window.notReloaded = true; return true")
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, row), "finished"))
    assert browser.execute_script("return window.notReloaded") is marker  # no reload happened
    screenshot(browser, "04-jobs-finished")


def test_filter_and_open_a_job_with_a_plot_and_download(browser, live, alice):
    job = alice.run("Series", input_data={"n": [80]})
    browser.get(live.url + "/ui/#/jobs?status=finished")
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, f"tr[data-job='{job['id']}']")))
    statuses = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#jobs .status")}
    assert statuses == {"finished"}
    # The table refreshes every second by patching rows: the row a user is about to click stays the same node.
    row = f"tr[data-job='{job['id']}']"
    browser.execute_script(f"document.querySelector(\"{row}\").kept = true")
    time.sleep(2.5)
    assert browser.execute_script(f"return document.querySelector(\"{row}\").kept") is True
    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    plot = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#outputs svg.plot polyline")))
    assert len(plot.get_attribute("points").split()) == 80
    assert "80 values" in browser.find_element(By.ID, "outputs").text
    screenshot(browser, "05-job-with-plot")
    browser.find_element(By.CSS_SELECTOR, "[data-file='curve.csv']").click()
    target = browser.downloads / "curve.csv"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    expected = Path(job["workdir"], "curve.csv").read_bytes()
    assert target.read_bytes() == expected


def test_cancel_a_running_job_from_its_page(browser, live, alice):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60]})
    browser.get(live.url + f"/ui/#/job/{job['id']}")
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "running"))
    screenshot(browser, "06-job-running")
    browser.find_element(By.ID, "cancel").click()
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "failed"))
    assert "cancelled" in browser.find_element(By.ID, "summary").text
    screenshot(browser, "07-job-cancelled")
    assert alice.get(f"/v1/job/{job['id']}").json()["error"] == "cancelled"


def test_delete_from_the_job_page(browser, live, alice):
    job = alice.run("Sellar1")
    browser.get(live.url + f"/ui/#/job/{job['id']}")
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "finished"))
    wait(browser).until(ready.presence_of_element_located((By.ID, "files")))
    browser.find_element(By.ID, "delete").click()
    wait(browser).until(ready.alert_is_present()).accept()
    wait(browser).until(ready.url_contains("#/jobs"))
    assert alice.get(f"/v1/job/{job['id']}").status_code == 404


def test_disciplines_page_and_api_docs(browser, live):
    browser.get(live.url + "/ui/#/disciplines")
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#disciplines a")))
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#disciplines a")]
    assert "Sellar1" in names
    screenshot(browser, "08-disciplines")
    browser.get(live.url + "/docs")
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    screenshot(browser, "09-api-docs")


def test_a_big_array_is_drawn_decimated(browser, live, alice):
    # Math.min(...values) threw a RangeError past about 10^5 values: the page stayed blank.
    job = alice.run("Series", input_data={"n": [300000]})
    browser.get(live.url + f"/ui/#/job/{job['id']}")
    plot = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#outputs svg.plot polyline")))
    points = plot.get_attribute("points").split()
    assert 2 < len(points) <= 2 * 160
    ys = [float(point.split(",")[1]) for point in points]
    assert max(ys) - min(ys) > 30  # the sine's whole range is drawn, not a flat line
    assert "300000 values" in browser.find_element(By.ID, "outputs").text
    screenshot(browser, "10-job-with-big-array")


def test_the_job_page_shows_the_tail_of_a_long_log(browser, live, alice):
    # The page asked for the whole log: a gigabyte log cost a gigabyte per view.
    job = alice.run("Printer")
    log = Path(job["workdir"], "gaas-job.log")
    with log.open("a") as handle:
        for line in range(20000):
            handle.write(f"solver iteration {line}\n")
    browser.get(live.url + f"/ui/#/job/{job['id']}")
    text = wait(browser).until(ready.presence_of_element_located((By.ID, "log"))).text
    assert text.rstrip().endswith("solver iteration 19999")
    assert "solver iteration 0\n" not in text and len(text) <= 64 * 1024
    assert "The last 64 KiB" in browser.find_element(By.ID, "view").text
