"""The dashboard at /ui/ in a real browser (Debian's Chromium, driven by Playwright), over real
stacks: gitsync deploys to moto_server's CloudFormation from a real Git server. A tenant signs in
with an access key, sees a synced stack and a failed one with its reason, opens the history,
resolves a blocker and sees the retry succeed, syncs now and signs out; another tenant's resources
never appear; requests without the CSRF token, forged cookies and ended sessions are refused.

GITSYNC_SCREENSHOTS=DIR keeps screenshots of the main pages there (docs/screenshots/ holds the
ones the docs show)."""
import http.client
import os
import shutil
import urllib.parse

import pytest

from conftest import make_tenant, moto  # noqa: F401  (moto: the module's moto server)
from gitserver import Repo
from test_cloudformation import cloudformation, deployer, git_http  # noqa: F401  (the module's fixtures)
from test_engine import TEMPLATE, Stack, deployment, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed (apt-get install chromium): the dashboard tests need a real browser")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def shot(page, name):
    keep = os.environ.get("GITSYNC_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        page.screenshot(path=os.path.join(keep, f"{name}.png"), full_page=True)


def sign_in(page, server, tenant):
    page.goto(server.endpoint + "/ui/")
    assert page.url.endswith("/ui/signin"), page.url  # not signed in: sent to sign in
    page.get_by_label("Access key ID").fill(tenant.access_key_id)
    page.get_by_label("Secret access key").fill(tenant.secret_access_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/")


def raw(server, method, path, cookie=None, body=None, headers=None):
    """One HTTP request outside the browser: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = cookie
    if body is not None:
        h.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    headers = {}
    for k, v in r.getheaders():  # repeated headers (Set-Cookie) one per line
        headers[k.lower()] = headers[k.lower()] + "\n" + v if k.lower() in headers else v
    out = (r.status, headers, r.read().decode("utf-8", "replace"))
    conn.close()
    return out


def session_cookie(context):
    (c,) = [c for c in context.cookies() if c["name"] == "gitsync_session"]
    return c


def attempts_of(stack, name):
    """How many attempts `gitsync history` keeps for a stack."""
    out = stack.server.cli("history", "--account-id", stack.tenant.account_id, "--target", name).stdout
    return sum(1 for line in out.splitlines() if f" {name} " in line and " commit " in line)


def test_the_dashboard_shows_resolves_syncs_and_keeps_tenants_apart(deployer, moto, git_http, browser, tmp_path):
    # Tenant A: one stack that syncs, one whose deployment file is wrong, one deleted behind
    # gitsync's back (a blocker).
    repo = Repo(git_http.root, "octo", "dash", str(tmp_path / "work"))
    first = repo.commit({"deploy/ok.yaml": deployment("dash-ok"), "deploy/bad.yaml": deployment("dash-bad", Nope=1),
                         "deploy/doomed.yaml": deployment("dash-doomed"), "infra/queue.yaml": TEMPLATE})
    tenant = make_tenant(deployer)
    stack = Stack(deployer, tenant, git_http.url, "octo", "dash", tmp_path)
    stack.configure("dash-ok", config_file="deploy/ok.yaml")
    stack.configure("dash-bad", config_file="deploy/bad.yaml")
    stack.configure("dash-doomed", config_file="deploy/doomed.yaml")
    stack.settled("dash-ok", first)
    stack.settled("dash-bad", first, "FAILED")
    stack.settled("dash-doomed", first)
    cfn = cloudformation(moto, role=tenant.role_arn())
    cfn.delete_stack(StackName="dash-doomed")
    second = repo.commit({"deploy/doomed.yaml": deployment("dash-doomed", Visibility=90)})
    stack.settled("dash-doomed", second, "FAILED")
    (blocker,) = stack.cc.get_sync_blocker_summary(ResourceName="dash-doomed", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]

    # Tenant B, another account, with a stack of its own.
    other_repo = Repo(git_http.root, "octo", "dash-other", str(tmp_path / "other-work"))
    other_first = other_repo.commit({"deploy/stack.yaml": deployment("other-secret"), "infra/queue.yaml": TEMPLATE})
    other = make_tenant(deployer)
    (tmp_path / "other").mkdir()
    other_stack = Stack(deployer, other, git_http.url, "octo", "dash-other", tmp_path / "other")
    other_stack.configure("other-secret-stack")
    other_stack.settled("other-secret-stack", other_first)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    # Sign in with the keyboard alone: the fields are labelled and Enter submits.
    page.goto(deployer.endpoint + "/ui/signin")
    shot(page, "signin")
    page.get_by_label("Access key ID").focus()
    page.keyboard.type(tenant.access_key_id)
    page.keyboard.press("Tab")
    page.keyboard.type(tenant.secret_access_key)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/")
    cookie = session_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"

    # The overview: every target at a glance, the failed one and the blocked one marked.
    rows = page.locator("table.targets tbody tr")
    assert rows.count() == 3
    text = page.locator("main").inner_text()
    assert "other-secret-stack" not in page.content()
    ok_row = page.locator("tr", has=page.get_by_role("link", name="dash-ok", exact=True))
    assert "SUCCEEDED" in ok_row.inner_text() and first[:12] in ok_row.inner_text() and "octo/dash" in ok_row.inner_text()
    bad_row = page.locator("tr", has=page.get_by_role("link", name="dash-bad", exact=True))
    assert "FAILED" in bad_row.inner_text()
    doomed_row = page.locator("tr", has=page.get_by_role("link", name="dash-doomed", exact=True))
    assert "1 active" in doomed_row.inner_text(), text
    shot(page, "overview")
    # Filters: by status, by name.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**state=failed**")
    assert sorted(page.locator("table.targets tbody th a").all_inner_texts()) == ["dash-bad", "dash-doomed"]
    page.goto(deployer.endpoint + "/ui/?q=OK")
    assert page.locator("table.targets tbody th a").all_inner_texts() == ["dash-ok"]

    # The failed stack: its reason, its history with events.
    page.goto(deployer.endpoint + "/ui/")
    page.get_by_role("link", name="dash-bad", exact=True).click()
    reason = page.locator(".reason").first.inner_text()
    assert "unknown parameter 'Nope'" in reason, reason
    assert page.locator("details.attempt").count() == attempts_of(stack, "dash-bad") >= 1
    assert "VALIDATION_FAILED" in page.locator("details.attempt").first.inner_text()
    # Nothing runs or waits for it (the fix is a new commit): the page does not poll.
    assert page.locator("#live[data-running]").count() == 0
    shot(page, "target-failed")

    # The blocked stack: resolve (the reason is asked for), then the retry recreates it, and the
    # page follows the attempt by itself.
    page.goto(deployer.endpoint + "/ui/")
    page.get_by_role("link", name="dash-doomed", exact=True).click()
    assert "was deleted outside gitsync" in page.locator(".blocker").inner_text()
    shot(page, "target-blocked")
    page.get_by_role("button", name="Resolve").click()  # empty reason: the browser asks for it
    assert page.locator(".blocker").count() == 1 and "notice" not in page.url
    page.get_by_label("Why is it safe to go on?").fill("recreate it from Git")
    page.get_by_role("button", name="Resolve").click()
    page.wait_for_url("**notice=resolved**")
    assert "Blocker resolved" in page.locator(".banner").inner_text()
    # The retry is due or running as the page loads; from here on nothing reloads the page: its
    # live region shows the new attempt succeed.
    assert page.locator("#live[data-running]").count() == 1
    page.evaluate("window.__notReloaded = true")
    page.locator("#live details.attempt").first.locator("summary .badge.ok").wait_for(timeout=60_000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("#live[data-running]").count() == 0
    assert second[:12] in page.locator("#live details.attempt").first.inner_text()
    resolved = stack.cc.get_sync_blocker_summary(ResourceName="dash-doomed", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"][0]
    assert resolved["Id"] == blocker["Id"] and resolved["Status"] == "RESOLVED" and resolved["ResolvedReason"] == "recreate it from Git"
    assert cfn.describe_stacks(StackName="dash-doomed")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    # Sync now: the latest commit again, as a new attempt.
    before = attempts_of(stack, "dash-ok")
    started = stack.status("dash-ok")["LatestSync"]["StartedAt"]
    page.goto(deployer.endpoint + "/ui/")
    page.get_by_role("link", name="dash-ok", exact=True).click()
    page.get_by_role("button", name="Sync now").click()
    page.wait_for_url("**notice=sync**")
    wait_for(lambda: stack.status("dash-ok")["LatestSync"]["StartedAt"] > started
             and stack.status("dash-ok")["LatestSync"]["Status"] == "SUCCEEDED", what="a new attempt after Sync now")
    assert attempts_of(stack, "dash-ok") == before + 1
    shot(page, "target")

    # Repositories, with their repository syncs.
    page.get_by_role("link", name="Repositories").click()
    assert "octo/dash-other" not in page.content()
    page.get_by_role("link", name="octo/dash", exact=True).click()
    assert "STARTING_SYNC" in page.content()  # in an attempt's events (closed ones too)

    # Refused: a state change without the session's CSRF token, or with another's.
    jar = f"gitsync_session={cookie['value']}"
    form = urllib.parse.urlencode({"region": tenant.region, "type": "CFN_STACK_SYNC", "key": "dash-ok"})
    count = attempts_of(stack, "dash-ok")
    status, _, body = raw(deployer, "POST", "/ui/target/sync", jar, form)
    assert status == 403 and "CSRF token" in body
    status, _, _ = raw(deployer, "POST", "/ui/target/sync", jar, form + "&csrf=" + "0" * 64)
    assert status == 403
    assert attempts_of(stack, "dash-ok") == count and stack.status("dash-ok")["LatestSync"]["StartedAt"] > started

    # Tenant B signs in elsewhere and sees only its own; A's pages and blockers are not B's.
    other_context = browser.new_context()
    other_page = other_context.new_page()
    sign_in(other_page, deployer, other)
    assert other_page.locator("table.targets tbody th a").all_inner_texts() == ["other-secret-stack"]
    other_page.goto(deployer.endpoint + f"/ui/target?region={tenant.region}&type=CFN_STACK_SYNC&key=dash-ok")
    assert "No CFN_STACK_SYNC named dash-ok" in other_page.content() and "octo/dash " not in other_page.content()
    other_page.goto(deployer.endpoint + "/ui/repository?region=us-east-1&key=link:" + stack.link_id)
    assert "no such repository" in other_page.content()
    other_cookie = f"gitsync_session={session_cookie(other_context)['value']}"
    other_csrf = other_page.locator("input[name=csrf]").first.get_attribute("value")
    status, _, body = raw(deployer, "POST", "/ui/target/resolve", other_cookie, urllib.parse.urlencode({
        "csrf": other_csrf, "region": tenant.region, "type": "CFN_STACK_SYNC", "key": "dash-doomed",
        "blocker": blocker["Id"], "resource": "dash-doomed", "reason": "not mine"}))
    assert status == 404 and "dash-doomed" in body  # B has no such target
    other_context.close()

    # A phone: the overview fits the screen (no sideways scrolling).
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.add_cookies([{**cookie}])
    phone_page = phone.new_page()
    phone_page.goto(deployer.endpoint + "/ui/")
    assert phone_page.locator("table.targets tbody tr").count() == 3
    assert phone_page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone_page, "overview-phone")
    phone.close()

    # Sign out ends the session everywhere: the old cookie opens nothing.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/signin")
    page.goto(deployer.endpoint + "/ui/")
    assert page.url.endswith("/ui/signin")
    status, headers, _ = raw(deployer, "GET", "/ui/", jar)
    assert status == 303 and headers["location"] == "/ui/signin"
    context.close()


def test_deleting_the_key_ends_its_sessions(deployer, browser):
    tenant = make_tenant(deployer)
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, deployer, tenant)
    jar = f"gitsync_session={session_cookie(context)['value']}"
    assert raw(deployer, "GET", "/ui/", jar)[0] == 200
    deployer.cli("keys", "delete", tenant.access_key_id)
    status, headers, _ = raw(deployer, "GET", "/ui/", jar)
    assert status == 303 and headers["location"] == "/ui/signin"
    page.reload()
    assert page.url.endswith("/ui/signin")
    context.close()


def test_hostile_requests_get_clear_refusals(deployer):
    tenant = make_tenant(deployer)
    # Sign-in: a wrong secret, a form without its token, a huge body.
    status, headers, body = raw(deployer, "GET", "/ui/signin")
    assert status == 200 and "csrf" in body
    token = headers["set-cookie"].split("gitsync_signin=")[1].split(";")[0]
    signin_cookie = f"gitsync_signin={token}"
    form = {"csrf": token, "access_key_id": tenant.access_key_id, "secret_access_key": "wrong"}
    status, headers, body = raw(deployer, "POST", "/ui/signin", signin_cookie, urllib.parse.urlencode(form))
    assert status == 401 and "do not sign in" in body and "gitsync_session" not in headers.get("set-cookie", "")
    form["secret_access_key"] = tenant.secret_access_key
    status, _, body = raw(deployer, "POST", "/ui/signin", None, urllib.parse.urlencode(form))
    assert status == 403 and "another site" in body  # no form cookie: a cross-site sign-in
    status, _, _ = raw(deployer, "POST", "/ui/signin", signin_cookie, "x=" + "a" * 100_000)
    assert status == 413
    status, headers, _ = raw(deployer, "POST", "/ui/signin", signin_cookie, urllib.parse.urlencode(form))
    (set_session,) = [c for c in headers["set-cookie"].split("\n") if c.startswith("gitsync_session=")]
    assert status == 303 and "HttpOnly" in set_session and "SameSite=Strict" in set_session and "Path=/ui;" in set_session
    jar = set_session.split(";")[0]

    # A forged or altered cookie signs nobody in.
    session_id, mac = jar.split("=", 1)[1].split(".")
    for forged in [f"gitsync_session={session_id}.{'0' * 64}", f"gitsync_session={'a' * 64}.{mac}", "gitsync_session=x",
                   "gitsync_session=" + "é" * 10]:
        status, headers, _ = raw(deployer, "GET", "/ui/", forged)
        assert status == 303 and headers["location"] == "/ui/signin", forged

    # Malformed links answer a page saying so, never a 500.
    for path in ["/ui/?page=abc", "/ui/?region=../etc", "/ui/?type=NOPE", "/ui/target?region=us-east-1&type=NOPE&key=x",
                 "/ui/target?region=US&type=CFN_STACK_SYNC&key=x", "/ui/target", "/ui/repository?region=us-east-1",
                 "/ui/target?region=us-east-1&type=TEMPLATE_SYNC&key=not-a-template-key"]:
        status, headers, body = raw(deployer, "GET", path, jar)
        assert status == 400, (path, status)
        assert "text/html" in headers["content-type"]
    status, _, body = raw(deployer, "GET", "/ui/target?region=us-east-1&type=CFN_STACK_SYNC&key="
                         + urllib.parse.quote("<script>x</script>"), jar)
    assert status == 404 and "<script>x" not in body and "&lt;script&gt;x" in body
    assert raw(deployer, "GET", "/ui/nothing-here", jar)[0] == 404
    # Every page refuses to be framed and runs no inline script.
    status, headers, _ = raw(deployer, "GET", "/ui/", jar)
    assert status == 200 and headers["x-frame-options"] == "DENY" and "script-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
