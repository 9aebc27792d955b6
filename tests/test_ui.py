"""The dashboard in real headless Chromium (Debian's chromium and chromium-driver, via selenium).

Screenshots of every page go to tests/artifacts/.
"""

import base64
import json
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def browser(live, tmp_path_factory):
    driver = chromium(tmp_path_factory)
    driver.get(live.url + "/ui/")
    wait(driver).until(ready.presence_of_element_located((By.ID, "username")))
    assert not driver.find_element(By.ID, "nav").is_displayed()  # no links to pages that need a sign-in
    screenshot(driver, "01-sign-in")
    sign_in(driver)
    wait(driver).until(ready.presence_of_element_located((By.ID, "jobs")))
    yield driver
    driver.quit()


def chromium(tmp_path_factory):
    """A headless Chromium with a profile of its own, downloads in driver.downloads."""
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
    return driver


def wait(driver, seconds=30):
    return WebDriverWait(driver, seconds)


def sign_in(driver, name="alice", password="alice-pw"):
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()


def screenshot(driver, name, whole_page=False):
    """The window, or the whole page however long (for the pages one reads by scrolling)."""
    if not whole_page:
        driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
        return
    # The capture lays the page out again without a scroll bar: as wide as the window.
    width, height = driver.execute_script(
        "return [Math.max(innerWidth, document.documentElement.scrollWidth), document.documentElement.scrollHeight]"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 6000), "scale": 1}},
    )
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def retype(element, text):
    """Replace what a field holds by text, as a user selecting it all and typing would."""
    element.clear()
    element.send_keys(text)


def opened_id(driver, fragment):
    """Wait for the page of a new job or batch (#/job/ID, #/batch/ID) and return its id."""
    wait(driver).until(ready.url_contains(fragment))
    return driver.current_url.rsplit("/", 1)[1]


def open_page(driver, service, fragment, css):
    """Go to a dashboard page of a service and wait for an element of that page (not of the page
    before it: a new fragment is routed in a later task, and until then the old page's elements
    are there)."""
    driver.get(service.url + "/ui/" + fragment)
    wait(driver).until(lambda _: driver.execute_script("return document.body.dataset.route === location.hash"))
    return wait(driver).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))


def open_job(driver, live, job_id):
    return open_page(driver, live, f"#/job/{job_id}", f"[data-job-page='{job_id}']")


def record_requests(driver):
    """From now on, keep "METHOD url" of every fetch the page starts in window.requestsSeen (once
    per page: a change of #/ route keeps the page, and its fetch wrapped before)."""
    driver.execute_script(
        "window.requestsSeen = [];"
        "if (!window.fetch.recorded) {"
        " const original = window.fetch;"
        " window.fetch = (url, options) => {"
        "  window.requestsSeen.push(((options && options.method) || 'GET') + ' ' + url); return original(url, options); };"
        " window.fetch.recorded = true; }"
    )


def requests_seen(driver, prefix):
    return [request for request in driver.execute_script("return window.requestsSeen") if request.startswith(prefix)]


def total_jobs(api):
    return int(api.get("/v1/job?limit=1").headers["X-Total-Count"])


def jobs_named(api, name):
    return [job for job in api.get("/v1/job?limit=100").json() if job["name"] == name]


def test_token_is_kept_in_session_storage_not_cookies(browser):
    assert browser.execute_script("return sessionStorage.getItem('gaas-token')")
    assert browser.get_cookies() == []


def test_submit_from_generated_form_and_watch_it_finish(browser, live):
    box = open_page(browser, live, "#/discipline/WriteTag", "[data-input='delay']")
    assert browser.find_element(By.CSS_SELECTOR, "[data-input='tag']").get_attribute("value") == "[0]"
    retype(box, "[2]")
    tag = browser.find_element(By.CSS_SELECTOR, "[data-input='tag']")
    retype(tag, "[42]")
    screenshot(browser, "02-discipline-form", whole_page=True)
    browser.find_element(By.ID, "run-async").click()
    job_id = opened_id(browser, "#/job/")
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
    open_page(browser, live, "#/jobs?status=finished", f"tr[data-job='{job['id']}']")
    statuses = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#jobs .status")}
    assert statuses == {"finished"}
    # The table refreshes every second by patching rows: the row a user is about to click stays the same node.
    row = f"tr[data-job='{job['id']}']"
    browser.execute_script(f"document.querySelector(\"{row}\").kept = true")
    record_requests(browser)
    # Each refresh asks for the list, patches the rows, then waits: three asks, two patches.
    wait(browser).until(lambda driver: len(requests_seen(driver, "GET /v1/job?")) >= 3)
    assert browser.execute_script(f"return document.querySelector(\"{row}\").kept") is True
    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    plot = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#outputs svg.plot polyline")))
    assert len(plot.get_attribute("points").split()) == 80
    assert "80 values" in browser.find_element(By.ID, "outputs").text
    screenshot(browser, "05-job-with-plot", whole_page=True)
    browser.find_element(By.CSS_SELECTOR, "[data-file='curve.csv']").click()
    target = browser.downloads / "curve.csv"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    expected = Path(job["workdir"], "curve.csv").read_bytes()
    assert target.read_bytes() == expected
    # Any array downloads as CSV (one value per line, full precision), made in the browser.
    browser.find_element(By.CSS_SELECTOR, "#outputs tr[data-name='curve'] [data-download='csv']").click()
    made = browser.downloads / f"job-{job['id']}-output-curve.csv"
    deadline = time.monotonic() + 20
    while not made.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [float(line) for line in made.read_text().split()] == alice.get(f"/v1/job/{job['id']}").json()["output_data"]["curve"]


def test_cancel_a_running_job_from_its_page(browser, live, alice):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [60]})
    open_job(browser, live, job["id"])
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "running"))
    screenshot(browser, "06-job-running")
    browser.find_element(By.ID, "cancel").click()
    # A cancelled job is not shown as a failure: its own badge, its own colour.
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "cancelled"))
    status = browser.find_element(By.CSS_SELECTOR, "#summary .status")
    assert status.get_attribute("data-status") == "cancelled" and "failed" not in status.get_attribute("class")
    assert "cancelled" in browser.find_element(By.ID, "summary").text
    screenshot(browser, "07-job-cancelled")
    assert alice.get(f"/v1/job/{job['id']}").json()["error"] == "cancelled"
    open_page(browser, live, "#/jobs", f"tr[data-job='{job['id']}']")
    badge = browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{job['id']}'] .status")
    assert badge.text == "cancelled"
    failed = browser.execute_script(
        "const b = document.createElement('span'); b.className = 'status failed'; document.body.append(b);"
        "const colour = getComputedStyle(b).backgroundColor; b.remove(); return colour"
    )
    assert badge.value_of_css_property("background-color") != failed


def test_delete_from_the_job_page(browser, live, alice):
    job = alice.run("Sellar1", cache=False)  # a run: its files (a hit of a run that wrote none has none)
    open_job(browser, live, job["id"])
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "finished"))
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#files a")))
    browser.find_element(By.ID, "delete").click()
    wait(browser).until(ready.alert_is_present()).accept()
    wait(browser).until(ready.url_contains("#/jobs"))
    assert alice.get(f"/v1/job/{job['id']}").status_code == 404


def test_disciplines_page_and_api_docs(browser, live):
    open_page(browser, live, "#/disciplines", "#disciplines a")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#disciplines a")]
    assert "Sellar1" in names
    screenshot(browser, "08-disciplines")
    browser.get(live.url + "/docs")
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    screenshot(browser, "09-api-docs")
    # "Authorize" signs in with the OAuth2 password flow on /token, and the token is kept on reload.
    browser.find_element(By.CSS_SELECTOR, "button.authorize").click()
    browser.find_element(By.ID, "oauth_username").send_keys("alice")
    browser.find_element(By.ID, "oauth_password").send_keys("alice-pw")
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper button.authorize").click()
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".modal-ux"), "Authorized"))
    screenshot(browser, "09b-api-docs-authorized")
    browser.refresh()
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    access = browser.execute_script("return ui.authSelectors.authorized().toJS().password.token.access_token")
    me = browser.execute_async_script(
        "fetch('/v1/user/me/', {headers: {Authorization: 'Bearer ' + arguments[0]}})"
        ".then((r) => r.json()).then(arguments[arguments.length - 1])",
        access,
    )
    assert me["username"] == "alice"


def test_a_big_array_is_drawn_decimated(browser, live, alice):
    # Math.min(...values) threw a RangeError past about 10^5 values: the page stayed blank.
    job = alice.run("Series", input_data={"n": [300000]})
    open_job(browser, live, job["id"])
    plot = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#outputs svg.plot polyline")))
    points = plot.get_attribute("points").split()
    assert 2 < len(points) <= 2 * 160
    ys = [float(point.split(",")[1]) for point in points]
    assert max(ys) - min(ys) > 30  # the sine's whole range is drawn, not a flat line
    assert "300000 values" in browser.find_element(By.ID, "outputs").text
    # The plot has axes labelled with the extremes, and the values are one click away (the first thousand).
    ticks = [tick.text for tick in browser.find_elements(By.CSS_SELECTOR, "#outputs svg.plot text")]
    assert "0" in ticks and "299999" in ticks and "index" in ticks
    browser.find_element(By.CSS_SELECTOR, "#outputs details.values summary").click()
    listed = wait(browser).until(ready.presence_of_all_elements_located((By.CSS_SELECTOR, "#outputs table.list tbody tr")))
    assert len(listed) == 1000
    screenshot(browser, "10-job-with-big-array")


def test_the_job_page_shows_the_tail_of_a_long_log(browser, live, alice):
    # The page asked for the whole log: a gigabyte log cost a gigabyte per view.
    job = alice.run("Printer")
    log = Path(job["workdir"], "gaas-job.log")
    with log.open("a") as handle:
        for line in range(20000):
            handle.write(f"solver iteration {line}\n")
    open_job(browser, live, job["id"])
    text = browser.find_element(By.ID, "log").text
    assert text.rstrip().endswith("solver iteration 19999")
    assert "solver iteration 0\n" not in text and len(text) <= 64 * 1024
    assert "The last 64 KiB" in browser.find_element(By.ID, "view").text


def test_a_running_job_ticks_and_follows_its_log(browser, live, alice):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [5]})
    open_job(browser, live, job["id"])
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "running"))
    wait(browser).until(ready.text_to_be_present_in_element((By.ID, "log"), "sleeper pid"))
    marker = browser.execute_script("window.notReloaded = true; return true")
    screenshot(browser, "11-job-live-before")
    before = (ARTIFACTS / "11-job-live-before.png").read_bytes()
    elapsed, log = browser.find_element(By.ID, "elapsed").text, browser.find_element(By.ID, "log").text
    # Sleeper prints once: the test plays the solver that keeps printing.
    with Path(job["workdir"], "gaas-job.log").open("a") as handle:
        handle.writelines(f"iteration {i} residual {10.0 ** -i:.3e}\n" for i in range(80))
    wait(browser, 4).until(lambda _: "iteration 79" in browser.find_element(By.ID, "log").text)
    screenshot(browser, "12-job-live-after")
    assert browser.find_element(By.ID, "elapsed").text != elapsed
    assert browser.find_element(By.ID, "log").text != log
    assert (ARTIFACTS / "12-job-live-after.png").read_bytes() != before
    scrolled = browser.execute_script(
        "const box = document.getElementById('log');"
        "return [box.scrollHeight > box.clientHeight, box.scrollTop + box.clientHeight >= box.scrollHeight - 2]"
    )
    assert scrolled == [True, True]  # the box overflows, and shows its end
    # When it ends, the page shows the results without a reload.
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "finished"))
    wait(browser).until(ready.text_to_be_present_in_element((By.ID, "outputs-holder"), "slept"))
    assert browser.execute_script("return window.notReloaded") is marker


def test_a_failure_shows_its_message_on_its_page_and_in_the_jobs_table(browser, live, alice):
    job = alice.run("Failing", input_data={"x": [3.5]})
    assert job["job_status"] == "failed" and job["message"] == "ValueError: the model diverged at x=3.5"
    open_job(browser, live, job["id"])
    message = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#summary #message")))
    assert message.text == job["message"]
    assert "raise ValueError" in browser.find_element(By.ID, "traceback").text
    screenshot(browser, "13-job-failed")
    row = open_page(browser, live, "#/jobs?status=failed", f"tr[data-job='{job['id']}']")
    assert row.find_element(By.CSS_SELECTOR, ".message").text == job["message"]
    assert DATE.match(row.find_element(By.CSS_SELECTOR, "td.date").text)
    screenshot(browser, "14-jobs-with-failure")


def test_a_3x6_jacobian_block_is_a_3x6_matrix(browser, live, alice):
    job = alice.run("SobieskiAerodynamics", linearize=True)
    block = job["jacobian_data"]["y_2"]["x_shared"]
    assert (len(block), len(block[0])) == (3, 6)
    open_job(browser, live, job["id"])
    figure = browser.find_element(By.CSS_SELECTOR, ".block[data-output='y_2'][data-input='x_shared']")
    matrix = figure.find_element(By.CSS_SELECTOR, "table.matrix")
    assert (matrix.get_attribute("data-rows"), matrix.get_attribute("data-cols")) == ("3", "6")
    assert "3 × 6" in figure.find_element(By.TAG_NAME, "figcaption").text
    rows = matrix.find_elements(By.CSS_SELECTOR, "tbody tr")
    cells = [row.find_elements(By.TAG_NAME, "td") for row in rows]
    assert [len(row) for row in cells] == [6, 6, 6]
    assert [[float(cell.get_attribute("data-value")) for cell in row] for row in cells] == block
    # Rounded to 6 significant digits on screen, the full value in the title.
    assert block[1][0] == pytest.approx(165458.26978768)
    assert cells[1][0].text == "165458" and float(cells[1][0].get_attribute("title")) == block[1][0]
    assert "heat" in matrix.get_attribute("class")  # 18 cells: coloured by value
    # Copying a row copies the full values, tab-separated.
    copied = browser.execute_script(
        "const row = arguments[0].tBodies[0].rows[1], range = document.createRange();"
        "range.selectNodeContents(row); getSelection().removeAllRanges(); getSelection().addRange(range);"
        "const data = new DataTransfer();"
        "row.dispatchEvent(new ClipboardEvent('copy', {clipboardData: data, bubbles: true, cancelable: true}));"
        "const text = data.getData('text/plain'); getSelection().removeAllRanges(); return text",
        matrix,
    )
    assert [float(value) for value in copied.split("\t")] == block[1]
    screenshot(browser, "15-job-jacobian", whole_page=True)


def test_the_form_shows_units_and_refuses_a_wrong_size(browser, live, alice):
    load = open_page(browser, live, "#/discipline/Documented", "[data-input='load']")
    label = browser.find_element(By.CSS_SELECTOR, "label[for='input-length']")
    assert "[m]" in label.text
    assert "Beam length" in label.find_element(By.XPATH, "..").text and "size 1" in label.find_element(By.XPATH, "..").text
    assert json.loads(load.get_attribute("value")) == [100, 50, 10]
    name = f"refused-{uuid.uuid4().hex[:8]}"
    browser.find_element(By.ID, "job-name").send_keys(name)
    before = total_jobs(alice)
    retype(load, "[1, 2]")
    browser.find_element(By.ID, "run-sync").click()
    error = wait(browser).until(ready.visibility_of_element_located((By.ID, "input-load-error")))
    assert error.text == "Expected 3 values, got 2."
    screenshot(browser, "16-form-refused")
    retype(load, "[1, 2,")
    record_requests(browser)
    browser.find_element(By.ID, "run-async").click()
    wait(browser).until(ready.text_to_be_present_in_element((By.ID, "input-load-error"), "Not JSON"))
    assert requests_seen(browser, "POST") == []  # the form sent nothing
    assert total_jobs(alice) == before and jobs_named(alice, name) == []
    assert "#/discipline/Documented" in browser.current_url


def test_run_again_opens_the_form_with_the_jobs_inputs(browser, live, alice):
    job = alice.run("Documented", name="beam-7", input_data={"length": [3.0], "load": [1.0, 2.0, 4.0]})
    open_job(browser, live, job["id"])
    browser.find_element(By.ID, "run-again").click()
    load = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-input='load']")))
    assert json.loads(load.get_attribute("value")) == [1, 2, 4]
    assert json.loads(browser.find_element(By.CSS_SELECTOR, "[data-input='length']").get_attribute("value")) == [3]
    assert browser.find_element(By.ID, "job-name").get_attribute("value") == "beam-7"


def test_a_double_click_on_run_now_runs_once(browser, live, alice):
    duration = open_page(browser, live, "#/discipline/Sleeper", "[data-input='duration']")
    retype(duration, "[1.5]")
    name = f"double-{uuid.uuid4().hex[:8]}"  # the jobs of this click, whatever else alice runs meanwhile
    browser.find_element(By.ID, "job-name").send_keys(name)
    record_requests(browser)
    ActionChains(browser).double_click(browser.find_element(By.ID, "run-sync")).perform()
    busy = browser.execute_script("const b = document.getElementById('run-sync'); return [b.disabled, b.textContent]")
    assert busy == [True, "Running…"]
    screenshot(browser, "17-form-busy")
    wait(browser).until(ready.url_contains("#/job/"))
    assert len(requests_seen(browser, "POST /v1/discipline/Sleeper/execute")) == 1
    assert len(jobs_named(alice, name)) == 1


def test_a_deep_link_survives_sign_in(browser, live, alice):
    job = alice.run("Counted", input_data={"x": [4.0]})
    browser.get(live.url + "/health")  # off the dashboard, so that no loop of it is left running
    browser.execute_script("sessionStorage.clear()")
    open_page(browser, live, f"#/job/{job['id']}", "#username")
    assert not browser.find_element(By.ID, "nav").is_displayed()
    sign_in(browser)
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, f"[data-job-page='{job['id']}']")))
    assert browser.current_url.endswith(f"#/job/{job['id']}")
    assert browser.find_element(By.ID, "nav").is_displayed()


def test_the_jobs_table_filters_by_discipline_and_name(browser, live, alice):
    tag = uuid.uuid4().hex[:8]
    wing = alice.run("Counted", name=f"wing-{tag}")
    # More jobs than a page after it: the server filters, not only the fetched page.
    for _ in range(21):
        alice.run("Counted")
    body = alice.run("Printer", name=f"fuselage-{tag}")
    open_page(browser, live, "#/jobs", f"tr[data-job='{body['id']}']")
    shown = lambda: [row.get_attribute("data-job") for row in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")]
    browser.find_element(By.ID, "name-filter").send_keys(f"wing-{tag}")
    wait(browser, 5).until(lambda _: shown() == [str(wing["id"])])
    assert "1–1 of 1 jobs that match the filters" in browser.find_element(By.ID, "jobs-count").text
    assert f"name=wing-{tag}" in browser.current_url
    screenshot(browser, "18-jobs-filtered")
    name_filter = browser.find_element(By.ID, "name-filter")
    name_filter.send_keys(Keys.CONTROL, "a")
    name_filter.send_keys(Keys.BACKSPACE)
    browser.find_element(By.ID, "discipline-filter").send_keys("Printer")
    wait(browser, 5).until(lambda _: str(body["id"]) in shown() and str(wing["id"]) not in shown())
    disciplines = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr td:nth-child(3)")}
    assert disciplines == {"Printer"}
    dates = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#jobs td.date")]
    assert dates and all(DATE.match(text) for text in dates)


def test_keyboard_focus_is_visible(browser, live):
    open_page(browser, live, "#/jobs", "#jobs")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    outline = browser.execute_script(
        "const style = getComputedStyle(document.activeElement); return [document.activeElement.tagName, style.outlineStyle, style.outlineWidth]"
    )
    assert outline[0] != "BODY" and outline[1:] == ["solid", "2px"]


def test_a_long_array_loads_from_a_file_and_plots_against_an_input(browser, live, tmp_path):
    options = {"name": "L", "input_names": ["x"], "output_names": ["y"], "inputs_size": 30, "outputs_size": 30}
    box = open_page(
        browser, live, f"#/discipline/LinearDiscipline?options={quote(json.dumps(options))}", "textarea[data-input='x']"
    )
    values = [i / 29 for i in range(30)]
    csv = tmp_path / "x.csv"
    csv.write_text("x\n" + "\n".join(repr(v) for v in values) + "\n")
    browser.find_element(By.CSS_SELECTOR, "[data-load='x']").send_keys(str(csv))
    wait(browser, 5).until(lambda _: json.loads(box.get_attribute("value")) == values)
    browser.find_element(By.ID, "linearize").click()
    screenshot(browser, "19-form-long-array", whole_page=True)
    browser.find_element(By.ID, "run-sync").click()
    picker = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#outputs select.x-axis")))
    Select(picker).select_by_value("x")
    plot = browser.find_element(By.CSS_SELECTOR, "#outputs svg.plot")
    assert plot.get_attribute("aria-label") == "plot of 30 values against x"
    ticks = [tick.text for tick in plot.find_elements(By.TAG_NAME, "text")]
    assert ticks[2:] == ["0", "1", "x"]  # after the y extremes: the x extremes and the x axis's name
    matrix = browser.find_element(By.CSS_SELECTOR, ".block[data-output='y'][data-input='x'] table.matrix")
    assert (matrix.get_attribute("data-rows"), matrix.get_attribute("data-cols")) == ("30", "30")
    screenshot(browser, "20-job-output-against-input", whole_page=True)


def test_a_narrow_window_stays_usable(browser, live, alice):
    job = alice.run("SobieskiAerodynamics", linearize=True)
    batch = submit_batch(alice, "WriteTag", samples=tags(3, 0.0))
    browser.set_window_size(420, 900)
    try:
        pages = [("#/jobs", "#jobs tbody tr"), (f"#/job/{job['id']}", f"[data-job-page='{job['id']}']"),
                 ("#/discipline/Documented", "[data-input='load']"), ("#/batches", "#batches tbody tr"),
                 (f"#/batch/{batch['id']}", "#scatter")]
        for index, (fragment, css) in enumerate(pages):
            open_page(browser, live, fragment, css)
            time.sleep(0.3)
            window, width, page_width = browser.execute_script(
                "const page = document.documentElement; return [innerWidth, page.clientWidth, page.scrollWidth]"
            )
            assert window <= 440 and page_width <= width, fragment  # tables scroll inside their box, not the page
            screenshot(browser, f"21-narrow-{index}", whole_page=index in (1, 4))
            if fragment == "#/jobs":  # the table is wider than the window: its box scrolls sideways
                inner, box = browser.execute_script(
                    "const box = document.querySelector('#jobs').parentElement; return [box.scrollWidth, box.clientWidth]"
                )
                assert inner > box
    finally:
        browser.set_window_size(1280, 1000)


# Batches


def submit_batch(api, discipline, **body):
    response = api.post(f"/v1/discipline/{discipline}/batch", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def tags(n, delay):
    """WriteTag points whose output echo equals their input tag: a straight line on the plot."""
    return [{"tag": [float(i)], "delay": [delay]} for i in range(n)]


def open_batch(driver, live, batch_id):
    return open_page(driver, live, f"#/batch/{batch_id}", f"[data-batch-page='{batch_id}']")


def bar_counts(driver):
    """The bar's four counts, read in one script: read one by one, a redraw between two reads
    mixes two polls (14 finished of one, 2 running and 16 pending of the next)."""
    return driver.execute_script(
        "const bar = document.getElementById('batch-progress');"
        " return Object.fromEntries(['finished', 'failed', 'running', 'pending'].map((s) => [s, Number(bar.dataset[s])]));"
    )


def circles(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#scatter circle")


def batch_status(driver):
    # Read in the page: the badge is replaced when the status changes, so an element found here could go stale.
    return driver.execute_script("const badge = document.querySelector('#summary .status'); return badge && badge.textContent")


def test_a_batch_page_follows_its_points_live(browser, live, alice):
    batch = submit_batch(alice, "WriteTag", name="tag-sweep", samples=tags(36, 0.4))  # about 8 s on 2 workers
    open_batch(browser, live, batch["id"])
    marker = browser.execute_script("window.notReloaded = true; return true")
    # The counts and the plot come from two polls: wait for both, and for a rate measured over a second or more.
    wait(browser, 20).until(
        lambda _: len(circles(browser)) >= 2 and bar_counts(browser)["finished"] >= 2
        and browser.find_element(By.ID, "time-left").text.startswith("about ")
    )
    screenshot(browser, "22-batch-running")
    before, drawn = bar_counts(browser), len(circles(browser))
    width = browser.find_element(By.CSS_SELECTOR, "#batch-progress .part.finished").value_of_css_property("width")
    assert before["finished"] < 36 and batch_status(browser) == "running"
    assert re.fullmatch(r"[\d.]+ points/s", browser.find_element(By.ID, "rate").text)
    wait(browser, 4.5).until(lambda _: len(circles(browser)) > drawn)  # the results are asked again every 1.5 s
    screenshot(browser, "23-batch-later")
    after = bar_counts(browser)
    assert after["finished"] > before["finished"] and sum(after.values()) == 36
    assert browser.find_element(By.CSS_SELECTOR, "#batch-progress .part.finished").value_of_css_property("width") != width
    # At the end: every point drawn, on the line echo = tag, the axes named and labelled with their extremes.
    wait(browser, 30).until(lambda _: batch_status(browser) == "finished")
    wait(browser, 2).until(lambda _: len(circles(browser)) == 36)  # asked at once when the batch ends, not 1.5 s later
    assert bar_counts(browser) == {"finished": 36, "failed": 0, "running": 0, "pending": 0}
    assert browser.find_element(By.ID, "plot-x").get_attribute("value") == "tag"
    assert browser.find_element(By.ID, "plot-y").get_attribute("value") == "echo"
    # Read in one go: a last poll may still redraw the plot (its numbers stay the same).
    dots, ticks = browser.execute_script(
        "const plot = document.getElementById('scatter');"
        "return [[...plot.querySelectorAll('circle')].map((c) => [+c.getAttribute('cx'), +c.getAttribute('cy')]),"
        "        [...plot.querySelectorAll('text')].map((t) => t.textContent)]"
    )
    dots.sort()
    assert all(x1 > x0 and y1 < y0 for (x0, y0), (x1, y1) in zip(dots, dots[1:]))
    # Round ticks (steps of 1, 2 or 5 times a power of ten) on both axes, then the axes' names.
    assert ticks == ["0", "10", "20", "30", "0", "5", "10", "15", "20", "25", "30", "35", "tag", "echo"]
    assert browser.find_element(By.ID, "plot-note").text == "36 points drawn."
    assert browser.find_element(By.ID, "time-left").text == "none"
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled")
    assert DATE.match(browser.find_element(By.CSS_SELECTOR, "#summary dd time").text)
    assert browser.execute_script("return window.notReloaded") is marker
    screenshot(browser, "24-batch-finished", whole_page=True)


def test_ten_thousand_points_draw_as_at_most_5000_circles(browser, live, alice):
    # The plot of a batch of 10,000 points (the server's maximum) stays quick to redraw every 1.5 s.
    batch = submit_batch(alice, "WriteTag", samples=tags(1, 0.0))
    open_batch(browser, live, batch["id"])
    drawn, points, took = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/ui/plot.js').then(({ scatter }) => {"
        "  const xs = [], ys = [];"
        "  for (let i = 0; i < 10000; i++) { xs.push(Math.sin(i) * 1e3); ys.push(Math.cos(i * 1.3) + (i % 7 === 0 ? NaN : 0)); }"
        "  ys[5] = null; const start = performance.now(); const plot = scatter(xs, ys, 'x', 'y');"
        "  done([plot.querySelectorAll('circle').length, Number(plot.dataset.points), performance.now() - start]);"
        "})"
    )
    assert points == 10000 - 1429 - 1  # NaN and null (failed) points are not drawn
    assert 1000 < drawn <= 5000 and took < 500


def test_the_batches_list_and_the_jobs_of_a_batch(browser, live, alice):
    batch = submit_batch(alice, "WriteTag", name="list-me", samples=tags(6, 0.2))
    row = open_page(browser, live, "#/batches", f"tr[data-batch='{batch['id']}']")
    assert row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text == "list-me"
    assert row.find_element(By.CSS_SELECTOR, "td:nth-child(3)").text == "WriteTag"
    assert row.find_element(By.CSS_SELECTOR, "td.points").text == "6"
    assert DATE.match(row.find_element(By.CSS_SELECTOR, "td.date").text)
    browser.execute_script("arguments[0].kept = true", row)
    # Updated in place until it ends: the same row, its bar full, its badge finished.
    status = row.find_element(By.CSS_SELECTOR, "td:nth-child(4)")  # the cell stays, its badge is replaced
    wait(browser, 20).until(lambda _: status.text == "finished")
    bar = row.find_element(By.CSS_SELECTOR, ".progress")
    wait(browser, 3).until(lambda _: bar.get_attribute("data-finished") == "6")
    assert row.find_element(By.CSS_SELECTOR, ".done").text == "6/6"
    assert browser.execute_script("return arguments[0].kept", row) is True
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current='page']").text == "Batches"
    time.sleep(0.5)  # the bar's width follows the counts with a short transition
    screenshot(browser, "25-batches-list")
    # From the batch page to its points in the jobs table: only them, in batch order.
    row.click()
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, f"[data-batch-page='{batch['id']}']")))
    browser.find_element(By.ID, "batch-jobs").click()
    wait(browser).until(ready.presence_of_element_located((By.ID, "batch-chip")))
    points = alice.get(f"/v1/job?batch_id={batch['id']}").json()
    rows = lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    wait(browser, 5).until(lambda _: len(rows()) == 6)
    assert [r.get_attribute("data-job") for r in rows()] == [str(point["id"]) for point in points]
    assert [r.get_attribute("data-batch-index") for r in rows()] == [str(i) for i in range(6)]
    assert rows()[2].find_element(By.CSS_SELECTOR, "td:nth-child(2)").text == f"list-me · batch #{batch['id']} · point 2"
    assert browser.find_element(By.ID, "batch-chip").text.startswith(f"batch #{batch['id']}")
    assert "1–6 of 6 jobs that match the filters" in browser.find_element(By.ID, "jobs-count").text
    screenshot(browser, "26-jobs-of-a-batch")
    # A point's page links back to its batch; the chip clears the filter.
    rows()[2].click()
    link = wait(browser).until(ready.presence_of_element_located((By.ID, "batch-link")))
    assert link.get_attribute("href").endswith(f"#/batch/{batch['id']}")
    assert link.find_element(By.XPATH, "..").text == f"batch #{batch['id']}, point 2"
    browser.back()
    clear = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#batch-chip button")))
    clear.click()
    wait(browser, 5).until(lambda _: browser.current_url.endswith("#/jobs"))
    wait(browser, 5).until(lambda _: not browser.find_elements(By.ID, "batch-chip"))


def test_cancel_and_delete_a_batch_from_its_page(browser, live, alice):
    batch = submit_batch(alice, "Sleeper", samples=[{"duration": [3.0]} for _ in range(12)])
    open_batch(browser, live, batch["id"])
    wait(browser, 20).until(lambda _: bar_counts(browser)["running"] >= 1)
    browser.find_element(By.ID, "cancel").click()
    wait(browser, 15).until(lambda _: batch_status(browser) == "failed")
    counts = bar_counts(browser)
    assert counts["pending"] == counts["running"] == 0 and counts["failed"] >= 10
    points = alice.get(f"/v1/job?batch_id={batch['id']}").json()
    assert len(points) == 12 and not [p for p in points if p["job_status"] in ("pending", "running")]
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled")
    wait(browser, 5).until(lambda _: "cancelled" in browser.find_element(By.ID, "plot-note").text)
    screenshot(browser, "27-batch-cancelled")
    browser.find_element(By.ID, "delete").click()
    browser.switch_to.alert.accept()
    wait(browser, 10).until(lambda _: browser.current_url.endswith("#/batches"))
    assert alice.get(f"/v1/batch/{batch['id']}").status_code == 404
    assert alice.get(f"/v1/job?batch_id={batch['id']}").json() == []


def test_download_the_results_of_a_batch_as_csv(browser, live, alice):
    batch = submit_batch(alice, "WriteTag", samples=tags(3, 0.0))
    open_batch(browser, live, batch["id"])
    wait(browser, 20).until(lambda _: batch_status(browser) == "finished")
    browser.find_element(By.ID, "download-csv").click()
    saved = browser.downloads / f"batch-{batch['id']}.csv"
    wait(browser, 10).until(lambda _: saved.exists() and saved.stat().st_size > 0)
    text = saved.read_text()
    assert text.startswith("batch_index,job_id,job_status,error,")
    assert text == alice.get(f"/v1/batch/{batch['id']}/results?format=csv").text
    assert len(text.splitlines()) == 4


def test_run_a_latin_hypercube_from_the_discipline_page(browser, live, alice):
    open_page(browser, live, "#/discipline/WriteTag", "#batch-form")
    browser.find_element(By.CSS_SELECTOR, "#batch-form summary").click()
    browser.find_element(By.ID, "run-batch").click()
    assert browser.find_element(By.ID, "batch-error").text == "Tick at least one input to vary."
    browser.find_element(By.CSS_SELECTOR, "[data-vary='tag']").click()
    upper = browser.find_element(By.CSS_SELECTOR, "[data-bound='upper'][data-for='tag']")
    retype(upper, "[-1]")
    browser.find_element(By.ID, "run-batch").click()
    assert "lower bound is above the upper bound" in browser.find_element(By.ID, "batch-error").text
    retype(upper, "[10]")
    count = browser.find_element(By.ID, "n-samples")
    retype(count, "8")
    screenshot(browser, "28-discipline-batch-form", whole_page=True)
    browser.find_element(By.ID, "run-batch").click()
    batch_id = opened_id(browser, "#/batch/")
    wait(browser, 20).until(lambda _: batch_status(browser) == "finished")
    batch = alice.get(f"/v1/batch/{batch_id}").json()
    assert batch["n_samples"] == 8 and batch["design"]["algo_name"] == "PYDOE_LHS"
    assert batch["design"]["design_space"] == {"tag": {"lower_bound": [0], "upper_bound": [10]}}
    results = alice.get(f"/v1/batch/{batch_id}/results").json()
    assert all(0 <= value[0] <= 10 for value in results["input_data"]["tag"])


def test_the_batch_form_offers_the_doe_algorithms_of_the_server(browser, live, alice):
    # Needs GET /v1/algorithms on the server.
    response = alice.get("/v1/algorithms")
    assert response.status_code == 200, response.text
    offered = {algorithm["name"]: algorithm for algorithm in response.json()["doe"]}
    open_page(browser, live, "#/discipline/WriteTag", "#batch-form")
    browser.find_element(By.CSS_SELECTOR, "#batch-form summary").click()
    select = browser.find_element(By.ID, "doe-algo")
    wait(browser, 10).until(lambda _: len(Select(select).options) > 1)
    names = [option.get_attribute("value") for option in Select(select).options]
    assert set(names) <= set(offered) and "PYDOE_LHS" in names and "CustomDOE" not in names
    assert select.get_attribute("value") == "PYDOE_LHS"  # the default: a Latin hypercube
    other = next(name for name in ("OT_MONTE_CARLO", "PYDOE_FULLFACT", "OT_FULLFACT") if name in names)
    Select(select).select_by_value(other)
    words = offered[other]["description"].split()
    assert words and words[0] in browser.find_element(By.ID, "doe-description").text
    browser.find_element(By.CSS_SELECTOR, "[data-vary='tag']").click()
    retype(browser.find_element(By.CSS_SELECTOR, "[data-bound='upper'][data-for='tag']"), "[10]")
    retype(browser.find_element(By.ID, "n-samples"), "4")
    screenshot(browser, "29-batch-form-algorithms", whole_page=True)
    browser.find_element(By.ID, "run-batch").click()
    batch = alice.get(f"/v1/batch/{opened_id(browser, '#/batch/')}").json()
    assert batch["design"]["algo_name"] == other and batch["n_samples"] == 4


STUB_ALGORITHMS = """
const answer = {doe: [
  {name: "CustomDOE", description: "Reads a file.", settings: {}},
  {name: "OT_MONTE_CARLO", description: "Monte Carlo sampling.", settings: {n_samples: {type: "integer", default: 1}}},
  {name: "LHS", description: "A :math:`n`-point Latin hypercube.", settings: {n_samples: {type: "integer", default: 1,
   description: "The number of samples."}}},
  {name: "NO_SAMPLES", description: "Takes levels.", settings: {levels: {type: "array"}}}], optimization: []};
const real = window.fetch;
window.fetch = (path, options) => String(path).startsWith("/v1/algorithms")
  ? Promise.resolve(new Response(JSON.stringify(answer), {headers: {"Content-Type": "application/json"}}))
  : real(path, options);
location.hash = "#/discipline/WriteTag";
"""


def test_the_batch_form_lists_what_the_server_offers_lhs_first(browser, live):
    # The route answered by the page itself: the form keeps the algorithms that take n_samples,
    # and picks LHS where PYDOE_LHS is not offered.
    browser.get(live.url + "/ui/?stub#/jobs")  # a new page: nothing cached from the form before
    wait(browser).until(ready.presence_of_element_located((By.ID, "jobs")))
    try:
        browser.execute_script(STUB_ALGORITHMS)
        wait(browser).until(ready.presence_of_element_located((By.ID, "doe-algo")))
        select = browser.find_element(By.ID, "doe-algo")
        wait(browser, 10).until(lambda _: len(Select(select).options) == 2)
        assert [option.get_attribute("value") for option in Select(select).options] == ["OT_MONTE_CARLO", "LHS"]
        assert select.get_attribute("value") == "LHS"
        browser.find_element(By.CSS_SELECTOR, "#batch-form summary").click()
        about = browser.find_element(By.ID, "doe-description")
        assert about.text == "A n-point Latin hypercube."
        assert about.find_element(By.CSS_SELECTOR, "var.math").text == "n"
        assert browser.find_element(By.ID, "n-samples").get_attribute("title") == "The number of samples."
    finally:
        browser.get(live.url + "/ui/#/jobs")


def test_descriptions_render_restructured_text(browser, live):
    open_page(browser, live, "#/discipline/Sellar1", "#description")
    description = browser.find_element(By.ID, "description")
    assert description.text == "The discipline to compute the coupling variable y_1."
    assert description.find_element(By.CSS_SELECTOR, "var.math").text == "y_1"
    # Every role and markup GEMSEO's docstrings use, and server text that must stay text.
    made = browser.execute_async_script(
        "const [text, done] = arguments;"
        "import('/ui/format.js').then(({ richText }) => {"
        "  const box = document.createElement('p'); box.append(...richText(text));"
        "  done([box.textContent, [...box.children].map((e) => [e.tagName, e.textContent]), box.innerHTML.includes('<img')]);"
        "})",
        "See :class:`~gemseo.core.discipline.Discipline`, :meth:`.execute`, ``x_shared`` and "
        ":math:`\\\\sqrt{y_1}`; `docs <https://example.org>`_ are *short* and **bold**; "
        "<img src=x onerror=alert(1)> :math:`<b>`",
    )
    text, children, injected = made
    assert text == "See Discipline, .execute, x_shared and \\\\sqrt{y_1}; docs are short and bold; <img src=x onerror=alert(1)> <b>"
    assert children == [["CODE", "Discipline"], ["CODE", ".execute"], ["CODE", "x_shared"], ["VAR", "\\\\sqrt{y_1}"],
                        ["EM", "short"], ["STRONG", "bold"], ["VAR", "<b>"]]
    assert not injected
    screenshot(browser, "30-discipline-description")


def test_the_jacobian_has_a_symmetric_log_scale(browser, live, alice):
    # dy_2/dx_shared of SobieskiAerodynamics spans 2e-4 to 1.65e5: linear, only the largest shows.
    job = alice.run("SobieskiAerodynamics", linearize=True)
    block = job["jacobian_data"]["y_2"]["x_shared"]
    open_job(browser, live, job["id"])
    css = ".block[data-output='y_2'][data-input='x_shared']"
    figure = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))
    toggle = browser.find_element(By.ID, "jacobian-log")
    if toggle.is_selected():
        toggle.click()

    def colours():
        """Each cell's distance from white (0 white, 1 the strongest colour), as drawn."""
        return browser.execute_script(
            "return [...document.querySelectorAll(arguments[0] + ' table.matrix tbody tr')].map((row) =>"
            "  [...row.querySelectorAll('td')].map((cell) => {"
            "    const [r, g, b] = getComputedStyle(cell).backgroundColor.match(/\\d+/g).map(Number);"
            "    return (765 - r - g - b) / 765; }))", css)

    def legend():
        return [float(t.get_attribute("data-value")) for t in browser.find_elements(By.CSS_SELECTOR, f"{css} svg.legend text")]

    linear = colours()
    top = max(abs(v) for row in block for v in row)
    assert legend()[:3] == [0, -top, top]
    screenshot(browser, "31-jacobian-linear", whole_page=True)
    toggle = browser.find_element(By.ID, "jacobian-log")
    toggle.click()
    wait(browser, 5).until(lambda _: browser.find_element(By.CSS_SELECTOR, ".jacobian-blocks").get_attribute("data-scale") == "log")
    log = colours()
    middle = [(i, j) for i, row in enumerate(block) for j, v in enumerate(row) if 1e-2 < abs(v) < 1e2]
    assert middle
    for i, j in middle:  # faint on the linear scale, clearly coloured on the log one
        assert linear[i][j] < 0.1 < log[i][j] and log[i][j] > 2 * linear[i][j]
    ticks = legend()
    assert ticks[:3] == [0, -top, top] and 1e2 in ticks and -1e2 in ticks  # decades, as real values
    labels = [t.text for t in browser.find_elements(By.CSS_SELECTOR, f"{css} svg.legend text")]
    assert "100" in labels and "165458" in labels and "-165458" in labels
    screenshot(browser, "32-jacobian-log", whole_page=True)
    # The choice holds for the next Jacobian; put it back for the other tests.
    open_job(browser, live, job["id"])
    assert browser.find_element(By.ID, "jacobian-log").is_selected()
    browser.find_element(By.ID, "jacobian-log").click()


def test_the_batch_plot_has_round_ticks_and_a_table_of_points(browser, live, alice):
    batch = submit_batch(alice, "WriteTag", name="table-me", samples=[{"tag": [0.5 * i], "delay": [0.0]} for i in range(25)])
    open_batch(browser, live, batch["id"])
    wait(browser, 30).until(lambda _: batch_status(browser) == "finished")
    wait(browser, 5).until(lambda _: len(circles(browser)) == 25)
    ys = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#scatter text.y")]
    xs = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#scatter text.x")]
    assert ys == ["0", "5", "10"] and xs == ["0", "2", "4", "6", "8", "10", "12"]
    points = alice.get(f"/v1/job?batch_id={batch['id']}").json()
    rows = browser.find_elements(By.CSS_SELECTOR, "#points tbody tr")
    assert len(rows) == 20 and browser.find_element(By.ID, "points-count").text == "points 1–20 of 25"
    assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#points thead th")] == ["POINT", "JOB", "STATUS", "TAG", "ECHO"]
    first = rows[3].find_elements(By.TAG_NAME, "td")
    assert [cell.text for cell in first] == ["3", f"#{points[3]['id']}", "finished", "1.5", "1"]  # echo is the tag rounded down
    assert first[1].find_element(By.TAG_NAME, "a").get_attribute("href").endswith(f"#/job/{points[3]['id']}")
    screenshot(browser, "33-batch-points-table", whole_page=True)
    browser.find_element(By.CSS_SELECTOR, "#points-holder .pager button:nth-child(2)").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#points tbody tr")
    assert [row.get_attribute("data-index") for row in rows] == ["20", "21", "22", "23", "24"]
    rows[4].find_element(By.TAG_NAME, "a").click()
    wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, f"[data-job-page='{points[24]['id']}']")))


def test_the_failed_filter_lists_real_failures_before_cancelled_points(browser, live, alice):
    failing = alice.run("Failing", input_data={"x": [1.5]})
    late = alice.run("Sleeper", timeout=0.5, input_data={"duration": [5.0]})
    assert (failing["job_status"], late["job_status"], late["error"]) == ("failed", "failed", "timeout")
    # Then 25 newer points, cancelled: newest first, they alone filled the first page.
    batch = submit_batch(alice, "Sleeper", samples=[{"duration": [30.0]} for _ in range(25)])
    assert alice.post(f"/v1/batch/{batch['id']}/cancel").status_code == 200
    alice.get(f"/v1/batch/{batch['id']}?long_polling=true&long_polling_timeout=20")
    open_page(browser, live, "#/jobs?status=failed", f"tr[data-job='{failing['id']}']")
    shown = lambda: browser.execute_script(
        "return [...document.querySelectorAll('#jobs tbody tr')].map((row) =>"
        " [row.dataset.job, row.querySelector('.status').dataset.status])"
    )
    wait(browser, 10).until(lambda _: len(shown()) == 20)
    statuses = [status for _, status in shown()]
    real = statuses.count("failed")
    assert real >= 2 and statuses == ["failed"] * real + ["cancelled"] * (20 - real)
    ids = [int(job) for job, _ in shown()]
    assert ids.index(late["id"]) < ids.index(failing["id"])  # newest first among the failures
    message = browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{late['id']}'] .message").text
    assert "time limit" in message
    screenshot(browser, "34-jobs-failed-first")
    # The next page goes on with the real failures left (other tests of this live service made
    # some), then the cancelled ones, none seen twice.
    left = int(alice.get("/v1/job?status=failed&not_error=cancelled&limit=1").headers["X-Total-Count"]) - real
    browser.find_element(By.XPATH, "//button[text()='Older']").click()
    wait(browser, 10).until(lambda _: shown() and int(shown()[0][0]) not in ids)
    statuses = [status for _, status in shown()]
    first = min(left, len(statuses))
    assert statuses == ["failed"] * first + ["cancelled"] * (len(statuses) - first)
    assert not {int(job) for job, _ in shown()} & set(ids)
