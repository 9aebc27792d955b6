// The administrators' page: users, groups and their members, the audit log.
import { apiJson, postJson, session } from "./api.js";
import { PAGE, el, pager, show } from "./dom.js";
import { timeCell } from "./format.js";

const ROLES = ["viewer", "member", "owner"];

function table(id, headings, body) {
  return el("table", { id }, el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))), body);
}

// A form of inputs whose submit runs action(values) and says what went wrong.
function form(id, fields, label, action) {
  const message = el("span", { class: "error", role: "alert" });
  const node = el("form", { class: "inline", id }, fields, el("button", { type: "submit" }, label), message);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    try { await action(node.elements); node.reset(); } catch (error) { message.textContent = error.message; }
  });
  return node;
}

const field = (name, attributes = {}) => el("input", { name, "aria-label": name, placeholder: name, ...attributes });
const roleSelect = (value) => el("select", { name: "role", "aria-label": "role" },
  ROLES.map((role) => el("option", { value: role, selected: role === value ? "" : null }, role)));
const button = (text, onclick) => el("button", { type: "button", class: "secondary", onclick }, text);

export async function adminView(params) {
  if (!session.me.is_admin) { show(el("p", { class: "error" }, "This page is for administrators.")); return; }
  const users = el("tbody"), groups = el("tbody"), members = el("tbody"), audit = el("tbody");
  const membersTitle = el("h3", { id: "members-title" });
  let group = params.get("group");

  async function loadUsers() {
    const { body } = await apiJson("/v1/admin/users");
    users.replaceChildren(...body.map((user) => el("tr", { "data-user": user.username },
      el("td", {}, user.username), el("td", {}, user.is_admin ? "admin" : ""),
      el("td", {}, user.directory ? "directory / proxy" : "password"), el("td", {}, timeCell(user.created_at)),
      el("td", {}, button(user.is_admin ? "Remove admin" : "Make admin", () => change(() =>
        postJson("/v1/admin/users", { username: user.username, is_admin: !user.is_admin }))),
      user.username === session.me.username ? "" : button("Delete", () => {
        if (confirm(`Delete ${user.username} with all their jobs, batches and files?`)) {
          change(() => apiJson(`/v1/admin/users?username=${encodeURIComponent(user.username)}`, { method: "DELETE" }));
        }
      })))));
  }

  async function loadGroups() {
    const { body } = await apiJson("/v1/admin/groups");
    groups.replaceChildren(...body.map((entry) => el("tr", { "data-group": entry.name, class: entry.name === group ? "selected" : null },
      el("td", {}, el("a", { href: `#/admin?group=${encodeURIComponent(entry.name)}` }, entry.name)),
      el("td", {}, String(entry.members)), el("td", {}, timeCell(entry.created_at)),
      el("td", {}, button("Delete", () => {
        if (confirm(`Delete the group ${entry.name}?`)) {
          change(() => apiJson(`/v1/admin/groups?name=${encodeURIComponent(entry.name)}`, { method: "DELETE" }));
        }
      })))));
    membersTitle.textContent = group ? `Members of ${group}` : "Choose a group to see its members.";
    if (!group) { members.replaceChildren(); return; }
    const path = `/v1/admin/groups/${encodeURIComponent(group)}/members`;
    const { body: list } = await apiJson(path);
    members.replaceChildren(...list.map((member) => {
      const select = roleSelect(member.role);
      select.addEventListener("change", () => change(() => postJson(path, { username: member.username, role: select.value })));
      return el("tr", { "data-member": member.username }, el("td", {}, member.username), el("td", {}, select),
        el("td", {}, button("Remove", () => change(() =>
          apiJson(`${path}?username=${encodeURIComponent(member.username)}`, { method: "DELETE" })))));
    }));
  }

  const offset = Number(params.get("offset") || 0);
  const auditPages = pager((at) => `#/admin?offset=${at}`, offset, "audit-count");
  async function loadAudit() {
    const { body, response } = await apiJson(`/v1/admin/audit?limit=${PAGE}&offset=${offset}`);
    audit.replaceChildren(...body.map((entry) => el("tr", {},
      el("td", {}, timeCell(entry.time)), el("td", {}, entry.actor), el("td", { class: "action" }, entry.action),
      el("td", {}, entry.target), el("td", {}, entry.address), el("td", {}, entry.detail))));
    const total = Number(response.headers.get("X-Total-Count"));
    auditPages.info.textContent = total ? `${offset + 1}–${offset + body.length} of ${total}` : "Nothing recorded yet.";
    auditPages.update(body.length, total);
  }

  const problem = el("p", { class: "error", role: "alert" });
  async function change(write) {
    problem.textContent = "";
    try { await write(); } catch (error) { problem.textContent = error.message; }
    await Promise.all([loadUsers(), loadGroups(), loadAudit()]);
  }

  const addUser = form("add-user", [field("username", { required: "" }),
    field("password", { type: "password", autocomplete: "new-password", placeholder: "password (none: directory)" }),
    el("label", {}, el("input", { type: "checkbox", name: "admin" }), " admin")], "Add user",
  (f) => change(() => postJson("/v1/admin/users", Object.assign({ username: f.username.value, is_admin: f.admin.checked },
    f.password.value ? { password: f.password.value } : {}))));
  const addGroup = form("add-group", [field("name", { required: "" })], "Add group",
    (f) => change(() => postJson("/v1/admin/groups", { name: f.name.value })));
  const addMember = form("add-member", [field("username", { required: "" }), roleSelect("member")], "Add member",
    (f) => change(() => postJson(`/v1/admin/groups/${encodeURIComponent(group || "")}/members`,
      { username: f.username.value, role: f.role.value })));
  addMember.hidden = !group;

  show(el("h1", {}, "Administration"), problem,
    el("h2", {}, "Users"), addUser, table("admin-users", ["User", "Role", "Signs in by", "Created", ""], users),
    el("h2", {}, "Groups"), addGroup, table("admin-groups", ["Group", "Members", "Created", ""], groups),
    membersTitle, addMember, table("admin-members", ["Member", "Role", ""], members),
    el("h2", {}, "Audit log"), table("audit", ["Time", "Actor", "Action", "Target", "Address", "Detail"], audit), auditPages.node);
  await Promise.all([loadUsers(), loadGroups(), loadAudit()]);
}
