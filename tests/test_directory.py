"""Directory sign-in against a real OpenLDAP server (Debian's slapd, started here on loopback)."""

import ldap3
import pytest
import requests

import directory
import errors
import settings
from conftest import TIMEOUT, start_service
from servers import Slapd, ldap_password

BASE = Slapd.base
PEOPLE, GROUPS = f"ou=people,{BASE}", f"ou=groups,{BASE}"
USERS = {"alice": "alice-ldap", "bob": "bob-ldap", "dave": "dave-ldap", "erin": "erin-ldap", "smith1": "s1", "smith2": "s2"}


def person(uid, password, surname="Doe"):
    return (f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {surname}\n"
            f"userPassword: {ldap_password(password)}\n\n")


def group(cn, *members):
    lines = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in members)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}\n"


ENTRIES = (
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n"
    f"dn: cn=reader,{BASE}\nobjectClass: person\ncn: reader\nsn: reader\nuserPassword: {ldap_password('reader-pw')}\n\n"
    + "".join(person(uid, password, "Smith" if uid.startswith("smith") else "Doe") for uid, password in USERS.items())
    + group("mdo", "alice", "bob")
    + group("leads", "alice")
    + group("others", "dave")
)


@pytest.fixture(scope="module")
def slapd():
    with Slapd(ENTRIES) as server:
        yield server


@pytest.fixture
def ldap(slapd, monkeypatch):
    """The settings of a directory with a DN template and group lookups; a test changes what it needs."""
    values = dict(
        LDAP_URL=slapd.url(), LDAP_USER_DN=f"uid={{username}},{PEOPLE}", LDAP_BIND_DN="", LDAP_BIND_PASSWORD="",
        LDAP_SEARCH_BASE=PEOPLE, LDAP_USER_FILTER="(uid={username})", LDAP_START_TLS=False, LDAP_CA_FILE="",
        LDAP_TIMEOUT=5.0, LDAP_GROUP_SEARCH_BASE=GROUPS,
        LDAP_GROUP_FILTER="(|(member={dn})(uniqueMember={dn})(memberUid={username}))", LDAP_GROUPS="",
    )
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value)
    return monkeypatch


def admin_connection(slapd):
    return ldap3.Connection(ldap3.Server(slapd.url()), slapd.admin_dn, slapd.admin_password, auto_bind=True)


def test_a_bind_as_the_user_decides_and_finds_the_groups(ldap):
    identity = directory.sign_in("alice", "alice-ldap")
    assert identity == ("alice", f"uid=alice,{PEOPLE}", (f"cn=leads,{GROUPS}", f"cn=mdo,{GROUPS}"))
    # The directory matches names without case or outer spaces: the name is the directory's.
    assert directory.sign_in(" ALICE", "alice-ldap").username == "alice"
    assert directory.sign_in("dave", "dave-ldap").groups == (f"cn=others,{GROUPS}",)
    assert directory.sign_in("erin", "erin-ldap").groups == ()
    assert directory.sign_in("alice", "bob-ldap") is None
    assert directory.sign_in("nobody", "alice-ldap") is None
    # An empty password would be an unauthenticated bind: never sent.
    assert directory.sign_in("alice", "") is None
    ldap.setattr(settings, "LDAP_GROUP_SEARCH_BASE", "")
    assert directory.sign_in("alice", "alice-ldap").groups == ()


@pytest.mark.parametrize("name", ["alice,ou=people", "*", "alice)(uid=*", "alice\\", "uid=alice", "al*"])
@pytest.mark.parametrize("how", ["dn template", "search bind"])
def test_names_are_escaped_into_dns_and_filters(ldap, name, how):
    if how == "search bind":
        ldap.setattr(settings, "LDAP_USER_DN", "")
        ldap.setattr(settings, "LDAP_BIND_DN", f"cn=reader,{BASE}")
        ldap.setattr(settings, "LDAP_BIND_PASSWORD", "reader-pw")
    assert directory.sign_in(name, "alice-ldap") is None


def test_a_search_bind_finds_one_entry_or_signs_in_none(ldap):
    ldap.setattr(settings, "LDAP_USER_DN", "")
    ldap.setattr(settings, "LDAP_BIND_DN", f"cn=reader,{BASE}")
    ldap.setattr(settings, "LDAP_BIND_PASSWORD", "reader-pw")
    assert directory.sign_in("alice", "alice-ldap").dn == f"uid=alice,{PEOPLE}"
    assert directory.sign_in("alice", "wrong") is None
    # A filter that finds two entries (two Smiths) signs in neither.
    ldap.setattr(settings, "LDAP_USER_FILTER", "(sn={username})")
    assert directory.sign_in("Smith", "s1") is None
    # A refused service account is the directory's problem, not the user's: 503, not 401.
    ldap.setattr(settings, "LDAP_USER_FILTER", "(uid={username})")
    ldap.setattr(settings, "LDAP_BIND_PASSWORD", "wrong")
    with pytest.raises(ldap3.core.exceptions.LDAPException) as raised:
        directory.sign_in("alice", "alice-ldap")
    assert errors.unavailable(raised.value) == "the directory (LDAP)"


def test_tls_by_ldaps_or_starttls_with_the_certificate_checked(ldap, slapd):
    ldap.setattr(settings, "LDAP_CA_FILE", str(slapd.ca_file))
    ldap.setattr(settings, "LDAP_URL", slapd.url(tls=True))
    assert directory.sign_in("alice", "alice-ldap").dn == f"uid=alice,{PEOPLE}"
    ldap.setattr(settings, "LDAP_URL", slapd.url())
    ldap.setattr(settings, "LDAP_START_TLS", True)
    assert directory.sign_in("alice", "alice-ldap").dn == f"uid=alice,{PEOPLE}"
    # Without the private CA the server's certificate is not trusted: nothing is sent.
    ldap.setattr(settings, "LDAP_CA_FILE", "")
    for url, start_tls in ((slapd.url(tls=True), False), (slapd.url(), True)):
        ldap.setattr(settings, "LDAP_URL", url)
        ldap.setattr(settings, "LDAP_START_TLS", start_tls)
        with pytest.raises(ldap3.core.exceptions.LDAPException) as raised:
            directory.sign_in("alice", "alice-ldap")
        assert errors.unavailable(raised.value) == "the directory (LDAP)"


def test_a_directory_out_of_reach_raises_what_becomes_a_503(ldap):
    from servers import free_port

    ldap.setattr(settings, "LDAP_URL", f"ldap://127.0.0.1:{free_port()}")
    with pytest.raises(ldap3.core.exceptions.LDAPException) as raised:
        directory.sign_in("alice", "alice-ldap")
    assert errors.unavailable(raised.value) == "the directory (LDAP)"


def test_directory_groups_map_to_gaas_groups_with_the_highest_role():
    groups = (f"cn=leads,{GROUPS}", f"cn=mdo,{GROUPS}")
    mapping = f"cn=mdo,{GROUPS}=mdo:member; leads=mdo:owner; mdo=readers:viewer; others=x:owner"
    assert directory.group_roles(groups, mapping) == {"mdo": "owner", "readers": "viewer"}
    assert directory.group_roles((f"cn=mdo,{GROUPS}",), mapping) == {"mdo": "member", "readers": "viewer"}
    assert directory.group_roles(groups, "") == {}
    for bad in ("mdo=team:admin", "=team:member", "mdo=:member", "mdo"):
        with pytest.raises(ValueError, match="GEMSEO_HTTP_LDAP_GROUPS"):
            directory.parse_group_map(bad)


def sign_in(service, name, password):
    return requests.post(service.url + "/token", data={"username": name, "password": password}, timeout=TIMEOUT)


def test_token_signs_in_directory_users_and_keeps_local_ones(tmp_path):
    # A directory of its own: this test changes and removes accounts.
    with Slapd(ENTRIES) as slapd:
        check_token_route(slapd, tmp_path)


def my_groups(service, token):
    return requests.get(service.url + "/v1/group", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT).json()


def check_token_route(slapd, tmp_path):
    service = start_service(
        tmp_path, users=(("bob", "bob-local"),), worker=False,
        GEMSEO_HTTP_LDAP_URL=slapd.url(), GEMSEO_HTTP_LDAP_USER_DN=f"uid={{username}},{PEOPLE}",
        GEMSEO_HTTP_LDAP_GROUP_SEARCH_BASE=GROUPS, GEMSEO_HTTP_LDAP_GROUPS="mdo=mdo:member; leads=mdo:owner; others=readers:viewer",
    )
    try:
        # First sign-in creates the local user; the next ones find it.
        first = sign_in(service, "alice", "alice-ldap")
        assert first.status_code == 200, first.text
        headers = {"Authorization": f"Bearer {first.json()['access_token']}"}
        me = requests.get(service.url + "/v1/user/me/", headers=headers, timeout=TIMEOUT).json()
        assert me["username"] == "alice"
        # Her directory groups give her gaas groups, with the highest role of the mapped ones.
        assert my_groups(service, first.json()["access_token"]) == [{"name": "mdo", "role": "owner"}]
        assert "alice" in service.admin("list-users").stdout
        again = sign_in(service, "alice", "alice-ldap").json()["access_token"]
        assert requests.get(service.url + "/v1/user/me/", headers={"Authorization": f"Bearer {again}"}, timeout=TIMEOUT).json() == me
        for name, password in (("alice", "wrong"), ("nobody", "alice-ldap"), ("alice", "")):
            refused = sign_in(service, name, password)
            assert refused.status_code in (401, 422) and "detail" in refused.json(), (name, refused.text)
        # A local user keeps its own password; the directory account of the same name does not take it over.
        assert sign_in(service, "bob", "bob-local").status_code == 200
        assert sign_in(service, "bob", "bob-ldap").status_code == 401
        assert sign_in(service, "Bob", "bob-ldap").status_code == 401
        # Another spelling of a directory name is the same user.
        other = sign_in(service, "Alice ", "alice-ldap").json()["access_token"]
        assert requests.get(service.url + "/v1/user/me/", headers={"Authorization": f"Bearer {other}"}, timeout=TIMEOUT).json() == me

        # A password changed in the directory: the old one stops at the next sign-in.
        with admin_connection(slapd) as conn:
            assert conn.modify(f"uid=alice,{PEOPLE}", {"userPassword": [(ldap3.MODIFY_REPLACE, [ldap_password("new-pw")])]})
        assert sign_in(service, "alice", "alice-ldap").status_code == 401
        assert sign_in(service, "alice", "new-pw").status_code == 200
        # Her groups changed in the directory: her role changes at the next sign-in, then goes.
        for group, members, expected in (("leads", ["dave"], [{"name": "mdo", "role": "member"}]), ("mdo", ["bob"], [])):
            with admin_connection(slapd) as conn:
                assert conn.modify(f"cn={group},{GROUPS}", {"member": [(ldap3.MODIFY_REPLACE, [f"uid={uid},{PEOPLE}" for uid in members])]})
            assert my_groups(service, sign_in(service, "alice", "new-pw").json()["access_token"]) == expected
        changes = service.sql("SELECT action, target, detail FROM audit WHERE actor = 'directory' AND target LIKE '%/alice' ORDER BY id")
        assert changes == [("member_set", "mdo/alice", "none -> owner"), ("member_set", "mdo/alice", "owner -> member"),
                           ("member_removed", "mdo/alice", "member -> none")]
        # An account removed from the directory signs in no more.
        with admin_connection(slapd) as conn:
            assert conn.delete(f"uid=erin,{PEOPLE}")
        assert sign_in(service, "erin", "erin-ldap").status_code == 401

        # The sign-in throttle counts directory checks as it counts local ones.
        codes = [sign_in(service, "dave", "wrong").status_code for _ in range(11)]
        assert codes == [401] * 10 + [429]

        # The directory down: its users get 503, local users still sign in.
        slapd.halt()
        try:
            down = sign_in(service, "alice", "new-pw")
            assert down.status_code == 503, down.text
            assert down.json() == {"detail": "The directory (LDAP) is unavailable; try again."}
            assert sign_in(service, "bob", "bob-local").status_code == 200
        finally:
            slapd.start_again()
        assert sign_in(service, "alice", "new-pw").status_code == 200
    finally:
        service.close()
