"""Teams (issue 20, API.md Part 6): personal access tokens, admins, groups, the audit log and
single sign-on through a proxy, against one real service per backend."""

import contextlib
import http.client
import itertools
import json
import time
from datetime import datetime

import pytest
import requests

from conftest import TIMEOUT, Api, start_service
from test_internals import tmp_store  # noqa: F401 (a fixture)

# Nothing here touches the queue: PostgreSQL with Redis would repeat PostgreSQL.
BACKENDS = ("sqlite", "postgresql")
PROXY_HEADER = "X-Forwarded-User"
_names = itertools.count()


@pytest.fixture(scope="module")
def team(tmp_path_factory, backend, backends):
    """The service of this module, with an admin "root"; 127.0.0.1 is its trusted proxy."""
    service = start_service(
        tmp_path_factory.mktemp("teams"), users=(("root", "root-pw"),), **backends.settings(backend),
        GEMSEO_HTTP_TRUSTED_PROXIES="127.0.0.1/32, ::1", GEMSEO_HTTP_AUTH_HEADER=PROXY_HEADER,
    )
    with rooted(service):
        yield service


@contextlib.contextmanager
def rooted(service):
    """A service started with a user "root": made an admin, signed in as service.admin_api;
    closed at the end."""
    try:
        assert service.admin("set-admin", "root").returncode == 0
        service.admin_api = service.api("root", "root-pw")
        yield service
    finally:
        service.close()


def new_user(team, root, admin=False):
    """A user of this test only, signed in: (name, Api)."""
    name = f"user{next(_names)}-{time.monotonic_ns() % 10**6}"
    made = root.post("/v1/admin/users", json={"username": name, "password": f"{name}-pw", "is_admin": admin})
    assert made.status_code == 201, made.text
    return name, team.api(name, f"{name}-pw")


def sign_in(team, name, password):
    return requests.post(team.url + "/token", data={"username": name, "password": password}, timeout=TIMEOUT)


def audit(root, **query):
    answer = root.get("/v1/admin/audit", params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.every_backend
def test_access_tokens_work_as_bearer_and_as_password_until_revoked(team):
    root = team.admin_api
    name, user = new_user(team, root)
    _, other = new_user(team, root)
    made = user.post("/v1/user/me/tokens", json={"name": "ci", "expires_in_days": 30})
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    assert secret.startswith("gaas_pat_") and len(secret) >= 50
    listed = user.get("/v1/user/me/tokens").json()
    assert [entry["name"] for entry in listed] == ["ci"] and "token" not in listed[0]
    assert listed[0]["expires_at"] > listed[0]["created_at"]
    assert secret not in json.dumps(listed)
    # Stored hashed: the secret is nowhere in the store.
    assert team.sql("SELECT count(*) FROM access_tokens WHERE token_hash = ?", (secret,))[0][0] == 0

    by_bearer = Api(team.url, secret)
    assert by_bearer.get("/v1/user/me/").json()["username"] == name
    session = Api(team.url, team.token(name, secret))  # the token as the password of /token
    assert session.get("/v1/user/me/").json()["username"] == name
    assert user.get("/v1/user/me/tokens").json()[0]["last_used_at"] is not None
    # Another user's name with it, or another user's revocation of it: refused, 404.
    assert sign_in(team, "root", secret).status_code == 401
    token_id = made.json()["id"]
    assert other.delete(f"/v1/user/me/tokens/{token_id}").status_code == 404
    assert other.delete("/v1/user/me/tokens/abc").status_code == 404
    assert by_bearer.get("/v1/user/me/").status_code == 200

    assert user.delete(f"/v1/user/me/tokens/{token_id}").status_code == 204
    for client in (by_bearer, session):
        refused = client.get("/v1/user/me/")
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert sign_in(team, name, secret).status_code == 401
    assert user.get("/v1/user/me/tokens").json() == []
    assert user.delete(f"/v1/user/me/tokens/{token_id}").status_code == 404
    actions = [(entry["action"], entry["target"]) for entry in audit(root, actor=name)]
    assert ("token_created", f"access token {token_id}") in actions and ("token_revoked", f"access token {token_id}") in actions

    for bad in ({}, {"name": ""}, {"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": 10_000}, {"name": "x", "scope": 1}):
        answer = user.post("/v1/user/me/tokens", json=bad)
        assert answer.status_code == 422 and "detail" in answer.json(), (bad, answer.text)
    assert Api(team.url).post("/v1/user/me/tokens", json={"name": "x"}).status_code == 401


def test_an_access_token_expires(team):
    root = team.admin_api
    _, user = new_user(team, root)
    made = user.post("/v1/user/me/tokens", json={"name": "short", "expires_in_days": 2 / 86400}).json()
    by_bearer = Api(team.url, made["token"])
    assert by_bearer.get("/v1/user/me/").status_code == 200  # now in the web process's cache
    deadline = time.monotonic() + 10
    while by_bearer.get("/v1/user/me/").status_code == 200:
        assert time.monotonic() < deadline, "the expired token still works"
        time.sleep(0.1)
    assert time.time() >= datetime.fromisoformat(made["expires_at"]).timestamp() - 0.1


def test_a_token_revoked_elsewhere_stops_within_5_s(team):
    root = team.admin_api
    # Deleted behind the web process's back, as another web process or host would.
    name, user = new_user(team, root)
    secret = user.post("/v1/user/me/tokens", json={"name": "elsewhere"}).json()["token"]
    by_bearer = Api(team.url, secret)
    session = Api(team.url, team.token(name, secret))
    assert by_bearer.get("/v1/user/me/").status_code == 200 and session.get("/v1/user/me/").status_code == 200
    team.sql("DELETE FROM access_tokens WHERE name = 'elsewhere' AND user_id = (SELECT id FROM users WHERE username = ?)", (name,))
    revoked_at = time.monotonic()
    for client in (by_bearer, session):
        while client.get("/v1/user/me/").status_code == 200:
            assert time.monotonic() - revoked_at < 5.5, "a revoked token worked for more than 5 s"
            time.sleep(0.05)


def test_the_reference_client_signs_in_with_an_access_token(team, reference_client):
    root = team.admin_api
    name, user = new_user(team, root)
    secret = user.post("/v1/user/me/tokens", json={"name": "HTTPDiscipline"}).json()["token"]
    (outputs,) = reference_client.run(
        team.url, ["execute", {"x_1": [2.0]}], user=name, password=secret, name="Sellar1", class_name="Sellar1"
    )
    assert set(outputs) >= {"y_1", "x_1"}
    assert user.get("/v1/job").json()[0]["discipline_class_name"] == "Sellar1"


@pytest.mark.every_backend
def test_admin_routes_are_for_admins_and_audited(team):
    root = team.admin_api
    name, user = new_user(team, root)
    anonymous = Api(team.url)
    routes = [
        ("GET", "/v1/admin/users", {}), ("POST", "/v1/admin/users", {"json": {"username": "x"}}),
        ("DELETE", "/v1/admin/users?username=x", {}), ("GET", "/v1/admin/groups", {}),
        ("POST", "/v1/admin/groups", {"json": {"name": "x"}}), ("DELETE", "/v1/admin/groups?name=x", {}),
        ("GET", "/v1/admin/groups/x/members", {}), ("POST", "/v1/admin/groups/x/members", {"json": {"username": "x", "role": "viewer"}}),
        ("DELETE", "/v1/admin/groups/x/members?username=x", {}), ("GET", "/v1/admin/audit", {}),
    ]
    for method, path, kwargs in routes:
        assert anonymous.request(method, path, **kwargs).status_code == 401, path
        refused = user.request(method, path, **kwargs)
        assert refused.status_code == 403 and refused.json()["detail"] == "Only administrators may use this route.", path
    assert team.sql("SELECT count(*) FROM users WHERE username = 'x'")[0][0] == 0

    # Users: for the directory (no password), made an admin, then not, then deleted.
    group, member = f"g-{name}", f"d-{name}"
    made = root.post("/v1/admin/users", json={"username": member})
    assert made.status_code == 201 and made.json()["directory"] and not made.json()["is_admin"]
    assert root.post("/v1/admin/users", json={"username": member, "is_admin": True}).json()["is_admin"]
    assert root.post("/v1/admin/users", json={"username": member, "is_admin": False}).status_code == 200
    listed = {entry["username"]: entry for entry in root.get("/v1/admin/users").json()}
    assert listed["root"]["is_admin"] and not listed[member]["is_admin"] and not listed[name]["directory"]
    for bad in ({"username": "a b"}, {"username": "x" * 65}, {"username": "ok", "password": ""}, {"name": "ok"}):
        assert root.post("/v1/admin/users", json=bad).status_code == 422, bad

    # Groups and members; the member sees their groups.
    assert root.post("/v1/admin/groups", json={"name": group}).status_code == 201
    assert root.post("/v1/admin/groups", json={"name": group}).status_code == 409
    assert root.post("/v1/admin/groups", json={"name": "no/slash"}).status_code == 422
    assert [e["members"] for e in root.get("/v1/admin/groups").json() if e["name"] == group] == [0]
    members = f"/v1/admin/groups/{group}/members"
    assert root.post(members, json={"username": name, "role": "viewer"}).json() == {"username": name, "role": "viewer"}
    assert root.post(members, json={"username": name, "role": "owner"}).status_code == 200
    assert root.post(members, json={"username": member, "role": "member"}).status_code == 200
    assert root.post(members, json={"username": name, "role": "admin"}).status_code == 422
    assert root.post(members, json={"username": "nobody-here", "role": "viewer"}).status_code == 404
    assert root.post("/v1/admin/groups/none-such/members", json={"username": name, "role": "viewer"}).status_code == 404
    assert root.get(members).json() == sorted([{"username": name, "role": "owner"}, {"username": member, "role": "member"}], key=lambda e: e["username"])
    assert [e["members"] for e in root.get("/v1/admin/groups").json() if e["name"] == group] == [2]
    assert user.get("/v1/group").json() == [{"name": group, "role": "owner"}]
    assert root.delete(f"{members}?username={name}").status_code == 204
    assert root.delete(f"{members}?username={name}").status_code == 404
    assert user.get("/v1/group").json() == []
    assert root.delete(f"/v1/admin/groups?name={group}").status_code == 204
    assert root.get(members).status_code == 404
    assert root.delete(f"/v1/admin/groups?name={group}").status_code == 404

    assert root.delete(f"/v1/admin/users?username={member}").status_code == 204
    assert root.delete(f"/v1/admin/users?username={member}").status_code == 404
    assert root.delete("/v1/admin/users?username=root").status_code == 409

    entries = audit(root, actor="root", limit=20)
    seen = [(entry["action"], entry["target"]) for entry in entries]
    for expected in [
        ("user_created", member), ("admin_set", member), ("group_created", group), ("member_set", f"{group}/{name}"),
        ("member_removed", f"{group}/{name}"), ("group_deleted", group), ("user_deleted", member),
    ]:
        assert expected in seen, expected
    assert [entry["id"] for entry in entries] == sorted((entry["id"] for entry in entries), reverse=True)
    assert entries[0]["address"] == "127.0.0.1" and entries[0]["time"].endswith("Z")
    page = root.get("/v1/admin/audit", params={"action": "group_created", "limit": 1})
    assert len(page.json()) == 1 and int(page.headers["X-Total-Count"]) >= 1
    assert root.get("/v1/admin/audit", params={"limit": 0}).status_code == 422


def test_sign_ins_and_failures_are_audited(team):
    root = team.admin_api
    name, _ = new_user(team, root)
    assert sign_in(team, name, "wrong").status_code == 401
    assert sign_in(team, name, f"{name}-pw").status_code == 200
    actions = [entry["action"] for entry in audit(root, actor=name)]
    assert actions[:2] == ["sign_in", "sign_in_failed"]


@pytest.mark.every_backend
def test_an_admin_reads_and_stops_any_work_as_its_owner_would(team):
    root = team.admin_api
    owner_name, owner = new_user(team, root)
    _, other = new_user(team, root)
    anonymous = Api(team.url)
    job = owner.run("Sellar1", input_data={"x_1": [2.0]})
    batch = owner.post("/v1/discipline/Sellar1/batch", json={"samples": [{"x_1": [1.0]}, {"x_1": [2.0]}]}).json()
    owner.get(f"/v1/batch/{batch['id']}?long_polling=true&long_polling_timeout=60")
    reads = [
        f"/v1/job/{job['id']}", f"/v1/job/{job['id']}/files", f"/v1/job/{job['id']}/log",
        f"/v1/job/{job['id']}/files/download?filename=gaas-job.log", f"/v1/batch/{batch['id']}",
        f"/v1/batch/{batch['id']}/results",
    ]
    for path in reads:
        assert owner.get(path).status_code == 200, path
        assert root.get(path).status_code == 200, path
        assert other.get(path).status_code == 404, path
        assert anonymous.get(path).status_code == 401, path
    assert root.get(f"/v1/job/{job['id']}").json()["output_data"] == job["output_data"]
    # Not listed with the admin's own work: lists show one's own and one's groups' (scope).
    assert job["id"] not in [entry["id"] for entry in root.get("/v1/job").json()]

    for path in (f"/v1/job/{job['id']}", f"/v1/batch/{batch['id']}"):
        assert other.delete(path).status_code == 404
        assert other.post(path + "/cancel").status_code == 404
    pending = owner.run("Sellar1", "asynchronous", input_data={"x_1": [3.0]}, timeout=60)
    cancelled = root.post(f"/v1/job/{pending['id']}/cancel")
    assert cancelled.status_code in (200, 409), cancelled.text
    assert root.post(f"/v1/batch/{batch['id']}/cancel").status_code == 200
    assert root.delete(f"/v1/job/{job['id']}").status_code == 204
    assert root.delete(f"/v1/batch/{batch['id']}").status_code == 204
    assert owner.get(f"/v1/job/{job['id']}").status_code == 404
    seen = {(entry["action"], entry["target"]) for entry in audit(root, actor="root", limit=50)}
    assert {("job_deleted", f"job {job['id']}"), ("batch_deleted", f"batch {batch['id']}"), ("batch_cancelled", f"batch {batch['id']}")} <= seen
    if cancelled.status_code == 200:
        assert ("job_cancelled", f"job {pending['id']}") in seen
    # The owner's own deletes are not audited.
    mine = owner.run("Sellar1")
    assert owner.delete(f"/v1/job/{mine['id']}").status_code == 204
    assert [e["action"] for e in audit(root, actor=owner_name)] == ["sign_in"]


def request_from(team, address, path, headers):
    """GET path from a client bound to `address` (another loopback address is another machine)."""
    conn = http.client.HTTPConnection("127.0.0.1", team.port, timeout=TIMEOUT, source_address=(address, 0))
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def test_the_proxy_user_header_is_believed_from_a_trusted_peer_only(team):
    root = team.admin_api
    name = f"sso-{time.monotonic_ns() % 10**8}"
    # Not trusted: ignored (and logged), even claiming a trusted address by X-Forwarded-For.
    for headers in ({PROXY_HEADER: name}, {PROXY_HEADER: name, "X-Forwarded-For": "127.0.0.1"}):
        assert request_from(team, "127.0.0.2", "/v1/user/me/", headers)[0] == 401
    assert team.sql("SELECT count(*) FROM users WHERE username = ?", (name,))[0][0] == 0
    assert "X-Forwarded-User".lower() in team.log("server.log") and "127.0.0.2" in team.log("server.log")
    # Trusted: that user, created at first sight; the proxy's X-Forwarded-For (the browser's
    # address, which uvicorn's proxy headers put in the client) does not change whom it trusts.
    status, me = request_from(team, "127.0.0.1", "/v1/user/me/", {PROXY_HEADER: name, "X-Forwarded-For": "198.51.100.7"})
    assert status == 200 and me["username"] == name
    status, again = request_from(team, "127.0.0.1", "/v1/user/me/", {PROXY_HEADER: name})
    assert (status, again) == (200, me)
    assert request_from(team, "127.0.0.1", "/v1/user/me/", {PROXY_HEADER: "bad name"})[0] == 401
    created = [entry for entry in audit(root, actor="proxy") if entry["target"] == name]
    assert [entry["action"] for entry in created] == ["user_created"] and created[0]["address"] == "198.51.100.7"
    # A bearer token still works from anywhere, the header aside.
    user_name, user = new_user(team, root)
    token = user.session.headers["Authorization"]
    status, me = request_from(team, "127.0.0.2", "/v1/user/me/", {PROXY_HEADER: name, "Authorization": token})
    assert (status, me["username"]) == (200, user_name)


def test_an_access_token_is_checked_in_a_tenth_of_a_millisecond_once_used(tmp_store):
    import asyncio
    from types import SimpleNamespace

    from starlette.requests import Request

    import auth
    import gaas

    user_id = tmp_store.add_user("alice", "hash")
    secret, hashed = auth.new_access_token()
    tmp_store.add_access_token(user_id, "speed", hashed, time.time() + 86400)
    app = SimpleNamespace(state=gaas.init_state(SimpleNamespace()))
    request = Request({"type": "http", "app": app, "headers": [(b"authorization", f"Bearer {secret}".encode())]})

    async def checks(count):
        assert (await gaas.current_user(request))["username"] == "alice"  # the first use reads the store
        started = time.perf_counter()
        for _ in range(count):
            await gaas.current_user(request)
        return (time.perf_counter() - started) / count

    best = min(asyncio.run(checks(2000)) for _ in range(3))
    print(f"access token check: {best * 1e6:.1f} us")
    assert best <= 0.0001


def test_retention_removes_old_audit_entries(tmp_store):
    import retention

    tmp_store.add_audit("root", "group_created", "mdo")
    assert retention.purge(1, dry_run=True)["audit"] == 0
    later = time.time() + 2 * 86400
    assert retention.purge(1, now=later, dry_run=True)["audit"] == 1
    assert retention.purge(1, now=later)["audit"] == 1
    assert tmp_store.list_audit() == ([], 0)


def test_the_dashboard_manages_tokens_and_shows_admins_their_page(team, tmp_path_factory):
    root = team.admin_api
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    from test_ui import chromium, open_page, screenshot, wait
    from test_ui import sign_in as type_sign_in

    name, _ = new_user(team, root)
    group = f"ui-{name}"
    driver = chromium(tmp_path_factory)

    def find(css):
        return wait(driver).until(ready.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def open_as(user, password, fragment, css):
        driver.get(team.url + "/ui/#/login")
        driver.execute_script("sessionStorage.clear()")
        driver.refresh()
        find("#username")
        type_sign_in(driver, user, password)
        find("#jobs")
        open_page(driver, team, fragment, css)
        return find(css)

    try:
        open_as(name, f"{name}-pw", "#/tokens", "#token-form")
        assert not driver.find_element(By.ID, "admin-link").is_displayed()
        driver.find_element(By.ID, "token-name").send_keys("from the dashboard")
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        secret = find("#new-token").text
        assert secret.startswith("gaas_pat_")
        assert Api(team.url, secret).get("/v1/user/me/").json()["username"] == name
        assert find("#tokens td").text == "from the dashboard"
        screenshot(driver, "teams-tokens")
        driver.execute_script("window.confirm = () => true")
        driver.find_element(By.CSS_SELECTOR, "#tokens button.revoke").click()
        wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#tokens tr[data-token]"))
        assert Api(team.url, secret).get("/v1/user/me/").status_code == 401
        open_page(driver, team, "#/admin", "#view .error")
        assert "for administrators" in find("#view .error").text

        open_as("root", "root-pw", "#/tokens", "#token-form")
        find("#admin-link").click()
        find(f"#admin-users tr[data-user='{name}']")
        driver.find_element(By.CSS_SELECTOR, "#add-group input[name=name]").send_keys(group)
        driver.find_element(By.CSS_SELECTOR, "#add-group button").click()
        find(f"#admin-groups tr[data-group='{group}'] a").click()
        find("#add-member input[name=username]").send_keys(name)
        driver.find_element(By.CSS_SELECTOR, "#add-member button").click()
        find(f"#admin-members tr[data-member='{name}']")
        assert root.get(f"/v1/admin/groups/{group}/members").json() == [{"username": name, "role": "member"}]
        wait(driver).until(lambda d: "member_set" in d.find_element(By.ID, "audit").text)
        screenshot(driver, "teams-admin", whole_page=True)

        # Behind a single sign-on proxy the dashboard needs no sign-in.
        driver.execute_script("sessionStorage.clear()")
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {PROXY_HEADER: f"sso-{name}"}})
        driver.get(team.url + "/ui/#/jobs")
        driver.refresh()
        wait(driver).until(lambda d: d.find_element(By.ID, "who").text == f"sso-{name}")
        find("#jobs")
        screenshot(driver, "teams-single-sign-on")
    finally:
        driver.quit()


def test_anonymous_callers_get_401_and_others_404_on_token_routes(team):
    root = team.admin_api
    _, user = new_user(team, root)
    token_id = user.post("/v1/user/me/tokens", json={"name": "mine"}).json()["id"]
    anonymous = Api(team.url)
    for method, path in (("GET", "/v1/user/me/tokens"), ("POST", "/v1/user/me/tokens"),
                         ("DELETE", f"/v1/user/me/tokens/{token_id}"), ("GET", "/v1/group")):
        refused = anonymous.request(method, path, json={"name": "x"})
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer", path
    # An admin revokes only their own tokens too: another user's is a 404, as for anyone.
    assert root.delete(f"/v1/user/me/tokens/{token_id}").status_code == 404
    assert [entry["id"] for entry in user.get("/v1/user/me/tokens").json()] == [token_id]


def test_gaas_admin_manages_admins_and_groups_and_is_audited(team):
    root = team.admin_api
    name, user = new_user(team, root)
    group = f"cli-{name}"

    def admin(*args):
        done = team.admin(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    admin("create-user", f"d-{name}", "--directory", "--admin")
    assert f"d-{name}\t" in admin("list-users") and "admin (directory)" in admin("list-users")
    admin("create-group", group)
    assert team.admin("create-group", group).returncode != 0
    admin("add-member", group, name, "--role", "viewer")
    admin("add-member", group, name, "--role", "owner")
    assert f"{group}\t{name}:owner" in admin("list-groups")
    assert user.get("/v1/group").json() == [{"name": group, "role": "owner"}]
    assert team.admin("add-member", group, "nobody-at-all", "--role", "owner").returncode != 0
    assert team.admin("add-member", group, name, "--role", "admin").returncode != 0
    admin("remove-member", group, name)
    admin("set-admin", f"d-{name}", "--off")
    admin("delete-group", group)
    assert user.get("/v1/group").json() == []
    entries = [(entry["action"], entry["target"], entry["detail"]) for entry in audit(root, limit=50) if entry["actor"].startswith("gaas-admin:")]
    for expected in [
        ("user_created", f"d-{name}", "directory"), ("admin_set", f"d-{name}", "on"), ("group_created", group, ""),
        ("member_set", f"{group}/{name}", "viewer -> owner"), ("member_removed", f"{group}/{name}", ""),
        ("admin_set", f"d-{name}", "off"), ("group_deleted", group, ""),
    ]:
        assert expected in entries, expected


@pytest.mark.parametrize("env, message", [
    ({"GEMSEO_HTTP_AUTH_HEADER": "X-Forwarded-User"}, "GEMSEO_HTTP_TRUSTED_PROXIES"),
    ({"GEMSEO_HTTP_TRUSTED_PROXIES": "127.0.0.1, not-an-address"}, "GEMSEO_HTTP_TRUSTED_PROXIES"),
])
def test_single_sign_on_settings_are_checked_at_start(env, message):
    import os
    import subprocess
    import sys

    from conftest import CODE

    started = subprocess.run([sys.executable, "-c", "import settings"], cwd=CODE, env={**os.environ, **env},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode != 0 and message in started.stderr


def test_a_malformed_directory_group_map_stops_the_start(monkeypatch):
    import auth
    import settings

    monkeypatch.setattr(settings, "LDAP_GROUPS", "mdo=mdo:admin")
    with pytest.raises(SystemExit, match="GEMSEO_HTTP_LDAP_GROUPS"):
        auth.check_group_map()
    monkeypatch.setattr(settings, "LDAP_GROUPS", "mdo=mdo:owner")
    auth.check_group_map()
