"""Sharing work by group (issue 20 point 1, API.md Part 6): jobs, batches and studies submitted
with "group" are read by the group's viewers and members and also cancelled and deleted by its
owners; lists by scope; against one real service per backend."""

import copy
import itertools
import time

import pytest

from conftest import Api
from study_specs import analytic_spec

BACKENDS = ("sqlite", "postgresql")
_names = itertools.count()
ROLES = ("owner", "viewer", "member", "group_owner", "other", "admin", "anonymous")
# Who reads a shared entry, and who may also cancel and delete it; anonymous gets 401.
READERS = {"owner", "viewer", "member", "group_owner", "admin"}
STOPPERS = {"owner", "group_owner", "admin"}


def unique(prefix):
    return f"{prefix}{next(_names)}-{time.monotonic_ns() % 10**6}"


@pytest.fixture(scope="module")
def sharing(live):
    """The session's service as an admin of this module's own sees it (admin_api): each test
    makes its own users and groups, so nothing here depends on what others left."""
    name = unique("root")
    live.add_user(name, "root-pw")
    assert live.admin("set-admin", name).returncode == 0
    seen = copy.copy(live)  # the session's Service object itself is left as it was
    seen.admin_api = live.api(name, "root-pw")
    return seen


def new_user(service, admin=False):
    name = unique("user")
    made = service.admin_api.post("/v1/admin/users", json={"username": name, "password": f"{name}-pw", "is_admin": admin})
    assert made.status_code == 201, made.text
    return name, service.api(name, f"{name}-pw")


def new_group(service, **members):
    """A group of this test only with these {username: role}; its name."""
    root, group = service.admin_api, unique("group")
    assert root.post("/v1/admin/groups", json={"name": group}).status_code == 201
    for username, role in members.items():
        added = root.post(f"/v1/admin/groups/{group}/members", json={"username": username, "role": role})
        assert added.status_code == 200, added.text
    return group


def team_of(service):
    """({role: Api} of every role of ROLES, the group, {role: user name}) for one test."""
    names, apis = {}, {"anonymous": Api(service.url)}
    for role in ROLES[:-1]:
        names[role], apis[role] = new_user(service, admin=role == "admin")
    roles = {"owner": "member", "viewer": "viewer", "member": "member", "group_owner": "owner"}
    group = new_group(service, **{names[role]: kind for role, kind in roles.items()})
    return apis, group, names


def submit_all(owner, group):
    """A finished job, batch and study of `owner` shared with `group` (None: private); their paths
    {kind: (entry, [GET paths])}."""
    into = {"group": group} if group else {}
    job = owner.run("Sellar1", input_data={"x_1": [2.0]}, **into)
    batch = owner.post("/v1/discipline/Sellar1/batch", json={"samples": [{"x_1": [1.0]}, {"x_1": [2.0]}], **into})
    assert batch.status_code == 202, batch.text
    batch = owner.get(f"/v1/batch/{batch.json()['id']}?long_polling=true&long_polling_timeout=60").json()
    study = owner.post("/v1/study", json={**analytic_spec(5), **into}, timeout=120)
    assert study.status_code == 202, study.text
    study = owner.get(f"/v1/study/{study.json()['id']}?long_polling=true&long_polling_timeout=60").json()
    return {
        "job": (job, [f"/v1/job/{job['id']}", f"/v1/job/{job['id']}/files", f"/v1/job/{job['id']}/log",
                      f"/v1/job/{job['id']}/files/download?filename=gaas-job.log"]),
        "batch": (batch, [f"/v1/batch/{batch['id']}", f"/v1/batch/{batch['id']}/results",
                          f"/v1/job?batch_id={batch['id']}"]),
        "study": (study, [f"/v1/study/{study['id']}", f"/v1/study/{study['id']}/history",
                          f"/v1/job/{study['job_id']}", f"/v1/job/{study['job_id']}/files"]),
    }


def expected(role, allowed):
    return 401 if role == "anonymous" else 200 if role in allowed else 404


@pytest.mark.every_backend
def test_every_route_answers_each_role_as_its_rights_say(sharing):
    apis, group, names = team_of(sharing)
    shared = submit_all(apis["owner"], group)
    private = submit_all(apis["owner"], None)
    for kind, (entry, paths) in shared.items():
        assert (entry["owner"], entry["group"]) == (names["owner"], group), kind
        for path in paths:
            for role in ROLES:
                got = apis[role].get(path)
                # A batch's points listed to one who may not read them: an empty page.
                if path.startswith("/v1/job?") and role not in READERS | {"anonymous"}:
                    assert got.status_code == 200 and got.json() == [], (role, path)
                    continue
                assert got.status_code == expected(role, READERS), (kind, role, path, got.text)
    batch_id = shared["batch"][0]["id"]
    for role in ("viewer", "member", "group_owner"):
        points = apis[role].get(f"/v1/job?batch_id={batch_id}&scope=group").json()
        assert [point["batch_index"] for point in points] == [0, 1] and {point["group"] for point in points} == {group}
    for kind, (entry, paths) in private.items():
        assert entry["group"] is None
        for role in ROLES:
            assert apis[role].get(paths[0]).status_code == expected(role, {"owner", "admin"}), (kind, role)

    # Cancel and delete: 404 for those who may not (existence is not told), then a group owner
    # cancels and deletes each kind; the owner and an admin do it on private work as today.
    for kind, (entry, _) in shared.items():
        path = f"/v1/{kind}/{entry['id']}"
        for role in ("viewer", "member", "other"):
            assert apis[role].post(path + "/cancel").status_code == 404, (kind, role)
            assert apis[role].delete(path).status_code == 404, (kind, role)
        assert apis["anonymous"].delete(path).status_code == 401
        assert apis["group_owner"].post(path + "/cancel").status_code in (200, 409), kind  # 409: ended
        assert apis["group_owner"].delete(path).status_code == 204, kind
        assert apis["owner"].get(path).status_code == 404, kind
    cancelled = apis["admin"].post(f"/v1/batch/{private['batch'][0]['id']}/cancel")
    assert cancelled.status_code == 200
    assert apis["admin"].delete(f"/v1/job/{private['job'][0]['id']}").status_code == 204
    assert apis["owner"].delete(f"/v1/study/{private['study'][0]['id']}").status_code == 204
    shared_again = apis["owner"].run("Sellar1", group=group)
    assert apis["admin"].delete(f"/v1/job/{shared_again['id']}").status_code == 204
    # Another user's work deleted by a group owner is audited as an admin's is.
    seen = sharing.admin_api.get("/v1/admin/audit", params={"actor": names["group_owner"]}).json()
    assert {"job_deleted", "batch_deleted", "study_deleted"} <= {entry["action"] for entry in seen}


def test_submitting_into_a_group_needs_a_member_or_owner_and_records_nothing_else(sharing):
    apis, group, names = team_of(sharing)
    bodies = {
        "/v1/discipline/Sellar1/execute": {"input_data": {"x_1": [1.0]}},
        "/v1/discipline/Sellar1/batch": {"samples": [{"x_1": [1.0]}]},
        "/v1/study": analytic_spec(5),
    }
    for path, body in bodies.items():
        refused = apis["viewer"].post(path, json={**body, "group": group})
        assert refused.status_code == 403 and "viewers cannot submit" in refused.json()["detail"], refused.text
        assert group in refused.json()["detail"]
        refused = apis["other"].post(path, json={**body, "group": group})
        assert refused.status_code == 403 and "not a member" in refused.json()["detail"], refused.text
        unknown = apis["member"].post(path, json={**body, "group": "no-such-group"})
        assert unknown.status_code == 404 and "no-such-group" in unknown.json()["detail"], unknown.text
        for wrong in (5, "", "a b", ["x"], None):
            assert apis["member"].post(path, json={**body, "group": wrong}).status_code == 422, (path, wrong)
    for role in ("viewer", "other", "member"):
        for kind in ("job", "batch", "study"):
            listed = apis[role].get(f"/v1/{kind}")
            assert listed.json() == [] and listed.headers["X-Total-Count"] == "0", (role, kind)
    # A member, an owner of the group and an admin outside it may.
    for role in ("member", "group_owner", "admin"):
        job = apis[role].run("Sellar1", group=group)
        assert (job["owner"], job["group"]) == (names[role], group)


@pytest.mark.every_backend
def test_lists_by_scope_and_group(sharing):
    apis, group, names = team_of(sharing)
    elsewhere = new_group(sharing, **{names["other"]: "member", names["member"]: "viewer"})
    owner, member, other = apis["owner"], apis["member"], apis["other"]
    made = {"job": [], "batch": [], "study": []}
    for api, into in ((owner, {"group": group}), (owner, {}), (member, {"group": group}), (other, {"group": elsewhere})):
        made["job"].append(api.run("Sellar1", **into)["id"])
        batch = api.post("/v1/discipline/Sellar1/batch", json={"samples": [{"x_1": [1.0]}], **into})
        study = api.post("/v1/study", json={**analytic_spec(3), **into}, timeout=120)
        assert batch.status_code == study.status_code == 202, (batch.text, study.text)
        made["batch"].append(batch.json()["id"])
        made["study"].append(study.json()["id"])
    shared_owner, private_owner, shared_member, shared_elsewhere = range(4)

    def listed(api, kind, **query):
        answer = api.get(f"/v1/{kind}", params=query)
        assert answer.status_code == 200, answer.text
        entries = [entry for entry in answer.json() if entry.get("job_type") != "study" and entry.get("batch_id") is None]
        assert int(answer.headers["X-Total-Count"]) >= len(entries)
        return {entry["id"]: (entry["owner"], entry["group"]) for entry in entries}

    for kind, ids in made.items():
        assert set(listed(member, kind)) == {ids[shared_member]}, kind
        assert set(listed(member, kind, scope="mine")) == {ids[shared_member]}, kind
        # Every group the member is in: the viewer's role in `elsewhere` counts.
        assert listed(member, kind, scope="group") == {
            ids[shared_owner]: (names["owner"], group),
            ids[shared_member]: (names["member"], group),
            ids[shared_elsewhere]: (names["other"], elsewhere),
        }, kind
        assert set(listed(member, kind, group=group)) == {ids[shared_owner], ids[shared_member]}, kind
        assert set(listed(apis["viewer"], kind, scope="group")) == {ids[shared_owner], ids[shared_member]}, kind
        assert set(listed(apis["admin"], kind, group=elsewhere)) == {ids[shared_elsewhere]}, kind
        assert set(listed(other, kind, scope="group")) == {ids[shared_elsewhere]}, kind
        assert ids[private_owner] in listed(owner, kind, scope="group")
        assert other.get(f"/v1/{kind}", params={"group": group}).status_code == 403, kind
        assert other.get(f"/v1/{kind}", params={"group": "no-such-group"}).status_code == 404, kind
        assert other.get(f"/v1/{kind}", params={"scope": "everything"}).status_code == 422, kind
    # Paged, with the total of the whole list.
    for kind in ("batch", "study"):  # ended first: a status that changes between two reads would move the page
        for entry_id in made[kind]:
            ended = sharing.admin_api.get(f"/v1/{kind}/{entry_id}?long_polling=true&long_polling_timeout=60").json()
            assert ended[f"{kind}_status"] in ("finished", "failed"), ended
    for query in ({"scope": "group"}, {"scope": "group", "status": "finished"}, {"group": group}):
        whole = member.get("/v1/job", params=query)
        assert whole.headers["X-Total-Count"] == str(len(whole.json())), query  # own shared jobs counted once
        page = member.get("/v1/job", params={**query, "limit": 2, "offset": 1})
        assert [entry["id"] for entry in page.json()] == [entry["id"] for entry in whole.json()][1:3], query
        assert page.headers["X-Total-Count"] == whole.headers["X-Total-Count"]
    page = member.get("/v1/batch", params={"scope": "group", "limit": 1})
    assert len(page.json()) == 1 and page.headers["X-Total-Count"] == "3"
    for study_id in made["study"]:
        sharing.admin_api.delete(f"/v1/study/{study_id}")


def test_a_membership_removed_stops_access_at_once(sharing):
    apis, group, names = team_of(sharing)
    job = apis["owner"].run("Sellar1", group=group)
    viewer = apis["viewer"]
    assert viewer.get(f"/v1/job/{job['id']}").status_code == 200
    assert [entry["id"] for entry in viewer.get("/v1/job?scope=group").json()] == [job["id"]]
    removed = sharing.admin_api.delete(f"/v1/admin/groups/{group}/members", params={"username": names["viewer"]})
    assert removed.status_code == 204
    assert viewer.get(f"/v1/job/{job['id']}").status_code == 404
    assert viewer.get("/v1/job?scope=group").json() == []
    assert viewer.get("/v1/job", params={"group": group}).status_code == 403
    # A viewer made owner cancels and deletes at once too.
    assert sharing.admin_api.post(f"/v1/admin/groups/{group}/members", json={"username": names["viewer"], "role": "owner"}).status_code == 200
    assert viewer.delete(f"/v1/job/{job['id']}").status_code == 204


def test_the_dashboard_shows_mine_or_my_groups_and_shares_from_the_form(sharing, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select

    from test_ui import chromium, open_page, screenshot, sign_in, wait

    apis, group, names = team_of(sharing)
    shared = apis["owner"].run("Sellar1", group=group)
    driver = chromium(tmp_path_factory)

    def find(css):
        return wait(driver).until(ready.visibility_of_element_located((By.CSS_SELECTOR, css)))

    try:
        driver.get(sharing.url + "/ui/#/login")
        find("#username")
        sign_in(driver, names["member"], f"{names['member']}-pw")
        find("#jobs")
        assert not driver.find_elements(By.CSS_SELECTOR, f'#jobs tr[data-job="{shared["id"]}"]')
        Select(find("#scope")).select_by_value("group")
        row = find(f'#jobs tr[data-job="{shared["id"]}"]')
        assert row.find_element(By.CSS_SELECTOR, ".owner").text == names["owner"]
        assert row.find_element(By.CSS_SELECTOR, ".group").text == group
        screenshot(driver, "sharing-jobs")
        for view in ("batches", "studies"):
            open_page(driver, sharing, f"#/{view}?scope=group", "#scope")  # not the jobs page's
            assert Select(find("#scope")).first_selected_option.get_attribute("value") == "group"
            assert [cell.get_attribute("textContent") for cell in driver.find_elements(By.CSS_SELECTOR, f"#{view} th")][-2:] == ["Owner", "Group"]
        # The execute form shares into the member's group.
        open_page(driver, sharing, "#/discipline/Sellar1", "#group-picker")
        Select(find("#group-picker")).select_by_value(group)
        find("#run-sync").click()
        wait(driver).until(lambda d: "#/job/" in d.current_url)
        job_id = int(driver.current_url.rsplit("/", 1)[1])
        assert apis["viewer"].get(f"/v1/job/{job_id}").json()["group"] == group
    finally:
        driver.quit()
