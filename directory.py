"""Sign-in against the company directory (LDAP or Active Directory) with ldap3.

A password is checked by a bind as the user: the directory decides, so a password changed or an
account removed there stops working at the next sign-in. ldap3 is imported only when
GEMSEO_HTTP_LDAP_URL is set. Its communication errors (directory down, TLS refused) reach the
caller, which answers 503 (errors.unavailable).
"""

import logging
import re
import ssl
from typing import NamedTuple

import settings
from store import ROLES

logger = logging.getLogger("gaas")


class Identity(NamedTuple):
    """Who the directory says signed in."""

    username: str  # as the directory writes it: it matched " Alice" to alice
    dn: str
    groups: tuple  # DNs of the directory groups the user is in


def configured():
    return bool(settings.LDAP_URL)


def sign_in(username, password):
    """The user's Identity if the directory accepts this password, else None."""
    # An empty password makes a simple bind "unauthenticated", which many servers accept.
    if not username or not password:
        return None
    import ldap3
    from ldap3.core.exceptions import LDAPBindError, LDAPPasswordIsMandatoryError

    dn = settings.LDAP_USER_DN.format(username=ldap3.utils.dn.escape_rdn(username)) if settings.LDAP_USER_DN else _search_dn(username)
    if dn is None:
        return None
    try:
        conn = _connection(dn, password)
    except (LDAPBindError, LDAPPasswordIsMandatoryError):
        return None
    try:
        return Identity(_name_in_directory(conn, dn, username), dn, _groups(conn, dn, username))
    finally:
        conn.unbind()


def _server():
    import ldap3

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.LDAP_CA_FILE or None)
    return ldap3.Server(settings.LDAP_URL, use_ssl=settings.LDAP_URL.startswith("ldaps://"), tls=tls,
                        connect_timeout=settings.LDAP_TIMEOUT)


def _connection(dn, password):
    """A connection bound as dn (StartTLS first when asked); raises LDAPBindError when refused."""
    import ldap3

    conn = ldap3.Connection(_server(), user=dn, password=password, read_only=True, raise_exceptions=False,
                            receive_timeout=max(1, round(settings.LDAP_TIMEOUT)))  # whole seconds: a socket option
    try:
        conn.open()
        if settings.LDAP_START_TLS:
            conn.start_tls()
        if not conn.bind():
            raise ldap3.core.exceptions.LDAPBindError(conn.result.get("description", "bind refused"))
    except BaseException:
        conn.unbind()
        raise
    return conn


def _search_dn(username):
    """The DN of the one entry the user filter finds, searched as the service account; None when
    there is none or more than one."""
    from ldap3.utils.conv import escape_filter_chars

    query = settings.LDAP_USER_FILTER.format(username=escape_filter_chars(username))
    conn = _connection(settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD)
    try:
        conn.search(settings.LDAP_SEARCH_BASE, query, attributes=[], size_limit=2)
        found = [entry["dn"] for entry in conn.response if entry.get("type") == "searchResEntry"]
    finally:
        conn.unbind()
    if len(found) != 1:
        if found:
            logger.warning("directory: %d entries match the user filter for %r; none signs in", len(found), username)
        return None
    return found[0]


def _name_in_directory(conn, dn, username):
    """The user's name as the directory holds it: its matching rules ignore case and spaces, so
    one account must not become several users here. The attribute is the one the DN template or
    the user filter puts {username} in; with neither (a filter too complex to read), the name as
    typed."""
    found = re.search(r"([\w-]+)=\{username\}", settings.LDAP_USER_DN or settings.LDAP_USER_FILTER)
    if not found:
        return username
    attribute = found.group(1)
    conn.search(dn, "(objectClass=*)", search_scope="BASE", attributes=[attribute])
    values = [value for entry in conn.response if entry.get("type") == "searchResEntry"
              for value in entry["attributes"].get(attribute, [])]
    matching = [value for value in values if value.strip().lower() == username.strip().lower()]
    return matching[0] if matching else username


def _groups(conn, dn, username):
    """DNs of the groups the user is in (none when no group search base is set)."""
    if not settings.LDAP_GROUP_SEARCH_BASE:
        return ()
    from ldap3.utils.conv import escape_filter_chars

    query = settings.LDAP_GROUP_FILTER.format(dn=escape_filter_chars(dn), username=escape_filter_chars(username))
    conn.search(settings.LDAP_GROUP_SEARCH_BASE, query, attributes=[])
    return tuple(sorted(entry["dn"] for entry in conn.response if entry.get("type") == "searchResEntry"))


def group_roles(groups, mapping=None):
    """{gaas group: role} that the directory groups give, by GEMSEO_HTTP_LDAP_GROUPS; several
    directory groups for one gaas group give the highest role."""
    from ldap3.utils.dn import parse_dn

    roles = {}
    for key, (group, role) in parse_group_map(settings.LDAP_GROUPS if mapping is None else mapping).items():
        for dn in groups:
            if key in (dn.lower(), parse_dn(dn)[0][1].lower()):
                roles[group] = max(roles.get(group, role), role, key=ROLES.index)
    return roles


def parse_group_map(text):
    """{directory group DN or cn, lower case: (gaas group, role)} from "KEY=GROUP:ROLE;...";
    raises ValueError naming a malformed item."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, _, target = item.rpartition("=")
        group, _, role = target.partition(":")
        if not key.strip() or not group.strip() or role.strip() not in ROLES:
            raise ValueError(f"GEMSEO_HTTP_LDAP_GROUPS: {item!r} is not DIRECTORY_GROUP=GROUP:ROLE with a role among {', '.join(ROLES)}")
        mapping[key.strip().lower()] = (group.strip(), role.strip())
    return mapping

