"""The dashboard's studies in headless Chromium, as tests/test_ui.py drives it (its browser fixture);
screenshots go to tests/artifacts/."""

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from study_specs import analytic_spec
from test_study_client import slow_spec, submit, wait_study
from test_ui import browser, open_page, record_requests, requests_seen, screenshot, wait  # noqa: F401 (a fixture)


def open_study(driver, live, study_id):
    return open_page(driver, live, f"#/study/{study_id}", f"[data-study-page='{study_id}']")


def drawn(driver, plot="objective-plot"):
    """How many points the plot draws now (0 before its first evaluation); read in one script, as
    each new evaluation replaces the plot."""
    points = driver.execute_script(f"const line = document.querySelector('#{plot} polyline'); return line && line.getAttribute('points')")
    return len(points.split()) if points else 0


def downloaded(driver, name, timeout=20):
    target = driver.downloads / name
    deadline = time.monotonic() + timeout
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return target.read_bytes()


def test_the_study_page_draws_the_convergence_while_it_grows(browser, live, alice):
    study = submit(alice, slow_spec(n_samples=20, delay=0.15))
    open_study(browser, live, study["id"])
    record_requests(browser)
    wait(browser).until(lambda driver: drawn(driver) >= 2)
    first = drawn(browser)
    assert browser.find_element(By.CSS_SELECTOR, "#summary .status").text == "running"
    screenshot(browser, "40-study-running-before", whole_page=True)
    wait(browser).until(lambda driver: drawn(driver) > first)
    assert browser.find_element(By.CSS_SELECTOR, "#summary .status").text == "running"  # it grew while running
    screenshot(browser, "41-study-running-after", whole_page=True)
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "finished"))
    wait(browser).until(lambda driver: drawn(driver) == 20)
    assert drawn(browser, "violation-plot") == 20

    # The history came in pieces, each asked from the last evaluation drawn: never the whole table again.
    asked = [int(url.split("since=")[1].split("&")[0]) for url in requests_seen(browser, f"GET /v1/study/{study['id']}/history")]
    assert asked == sorted(asked) and len(asked) >= 3 and asked.count(0) <= 1

    ended = alice.get(f"/v1/study/{study['id']}").json()
    assert browser.find_element(By.ID, "evaluations").text == "20"
    shown_x = browser.find_element(By.CSS_SELECTOR, "#best-x tr[data-name='tag'] td.num").get_attribute("data-value")
    assert float(shown_x) == ended["best"]["x"]["tag"][0]
    assert "PYDOE_LHS" in browser.find_element(By.ID, "settings").text
    button = wait(browser).until(ready.element_to_be_clickable((By.ID, "download-h5")))
    screenshot(browser, "42-study-finished", whole_page=True)
    button.click()
    h5 = alice.get(f"/v1/job/{ended['job_id']}/files/download", params={"filename": "problem.h5"}).content
    assert downloaded(browser, f"study-{study['id']}-problem.h5") == h5 and h5.startswith(b"\x89HDF")
    browser.find_element(By.ID, "download-csv").click()
    csv = alice.get(f"/v1/study/{study['id']}/history?format=csv").content
    assert downloaded(browser, f"study-{study['id']}-history.csv") == csv and csv.count(b"\n") == 21


def test_cancel_then_delete_from_the_study_page(browser, live, alice):
    study = submit(alice, slow_spec(n_samples=100, delay=0.2))
    open_study(browser, live, study["id"])
    wait(browser).until(lambda driver: drawn(driver) >= 2)
    browser.find_element(By.ID, "cancel").click()
    wait(browser).until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#summary .status"), "cancelled"))
    assert wait_study(alice, study["id"])["error"] == "cancelled"
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled")
    screenshot(browser, "43-study-cancelled")
    browser.find_element(By.ID, "delete").click()
    wait(browser).until(ready.alert_is_present()).accept()
    wait(browser).until(ready.url_contains("#/studies"))
    assert alice.get(f"/v1/study/{study['id']}").status_code == 404


def test_the_studies_list_and_the_job_row_of_a_study(browser, live, alice):
    study = wait_study(alice, submit(alice, analytic_spec(n_samples=30))["id"])
    assert study["study_status"] == "finished"
    row = open_page(browser, live, "#/studies", f"tr[data-study='{study['id']}']")
    # The list is asked again every second: a page left open shows the end within a second.
    wait(browser, 5).until(lambda _: row.find_element(By.CSS_SELECTOR, ".status").text == "finished")
    assert row.find_element(By.CSS_SELECTOR, ".evaluations").text == "30"
    assert row.find_element(By.CSS_SELECTOR, ".best").text.endswith("(feasible)")
    ids = [int(tr.get_attribute("data-study")) for tr in browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr")]
    assert ids == sorted(ids, reverse=True)  # newest first
    screenshot(browser, "44-studies")
    # Its job is one row of the jobs table, and leads to the study.
    job_row = open_page(browser, live, "#/jobs", f"tr[data-job='{study['job_id']}']")
    assert job_row.get_attribute("data-study") == str(study["id"])
    assert f"study #{study['id']}" in job_row.text
    screenshot(browser, "46-jobs-with-a-study")
    job_row.click()
    wait(browser).until(ready.url_contains(f"#/study/{study['id']}"))
    # The post-processing images of its job, shown once it has ended.
    image = wait(browser).until(ready.presence_of_element_located((By.CSS_SELECTOR, "#images img")))
    wait(browser).until(lambda _: browser.execute_script("return arguments[0].naturalWidth", image) > 0)
    screenshot(browser, "45-study-images", whole_page=True)
    # Its job's page (log, files) links back to the study.
    browser.find_element(By.ID, "study-job").click()
    back = wait(browser).until(ready.presence_of_element_located((By.ID, "study-link")))
    assert back.get_attribute("href").endswith(f"#/study/{study['id']}")
    # A narrow window: tables and plots stay inside it (tables scroll in their own box).
    browser.set_window_size(420, 900)
    try:
        for index, (fragment, css) in enumerate([(f"#/study/{study['id']}", "#objective-plot svg"), ("#/studies", "#studies tbody tr")]):
            open_page(browser, live, fragment, css)
            width, page_width = browser.execute_script("const page = document.documentElement; return [page.clientWidth, page.scrollWidth]")
            assert page_width <= width, fragment
            screenshot(browser, f"47-narrow-{index}", whole_page=index == 0)
    finally:
        browser.set_window_size(1280, 1000)
