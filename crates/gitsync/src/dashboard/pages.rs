//! The dashboard's pages, written from what the store answers. Every page has the same frame
//! (navigation, account, sign-out); the part that changes while a sync runs is `#live`, which
//! the page's script reloads every few seconds while it says `data-running`.

use super::html::{Html, url};
use gitsync_model::{
    BlockerStatus, RepositorySyncStatus, ResourceSyncAttempt, ResourceSyncStatus, SyncBlocker,
    SyncEvent, SyncType, Timestamp,
};
use gitsync_store::{
    HistoryEntry, RepositoryHistoryEntry, RepositorySummary, TargetFilter, TargetState,
    TargetSummary,
};

/// Targets per overview page.
pub const PAGE_SIZE: usize = 50;
/// Attempts per page of a target's or a repository's history.
pub const HISTORY_PAGE: usize = 20;

/// A message shown at the top of a page.
pub enum Banner {
    Notice(String),
    Error(String),
}

/// The frame of every page but sign-in.
pub fn page(
    title: &str,
    account: &str,
    csrf: &str,
    body: &Html,
    banner: Option<&Banner>,
) -> String {
    let mut h = Html::default();
    head(&mut h, title);
    h.raw("<header class=\"top\"><a class=\"brand\" href=\"/ui/\">gitsync</a>")
        .raw("<nav aria-label=\"Main\"><a href=\"/ui/\">Sync targets</a> <a href=\"/ui/repositories\">Repositories</a></nav>")
        .raw("<div class=\"who\"><span>Account ")
        .text(account)
        .raw("</span><form method=\"post\" action=\"/ui/signout\">")
        .hidden("csrf", csrf)
        .raw("<button type=\"submit\" class=\"link\">Sign out</button></form></div></header>")
        .raw("<main id=\"main\">");
    if let Some(b) = banner {
        match b {
            Banner::Notice(m) => h.raw("<p class=\"banner notice\" role=\"status\">").text(m),
            Banner::Error(m) => h.raw("<p class=\"banner error\" role=\"alert\">").text(m),
        };
        h.raw("</p>");
    }
    let mut out = h.into_string();
    out.push_str(body.as_str());
    out.push_str("</main></body></html>");
    out
}

fn head(h: &mut Html, title: &str) {
    h.raw("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(title)
        .raw(" · gitsync</title><link rel=\"stylesheet\" href=\"/ui/assets/dashboard.css\">")
        .raw("<script src=\"/ui/assets/dashboard.js\" defer></script></head><body>")
        .raw("<a class=\"skip\" href=\"#main\">Skip to content</a>");
}

/// The sign-in page.
pub fn sign_in(form_token: &str, error: Option<&str>) -> String {
    let mut h = Html::default();
    head(&mut h, "Sign in");
    h.raw("<main id=\"main\" class=\"signin\"><h1>Sign in to gitsync</h1>");
    if let Some(e) = error {
        h.raw("<p class=\"banner error\" role=\"alert\">")
            .text(e)
            .raw("</p>");
    }
    h.raw("<form method=\"post\" action=\"/ui/signin\">")
        .hidden("csrf", form_token)
        .raw("<label for=\"access_key_id\">Access key ID</label>")
        .raw("<input id=\"access_key_id\" name=\"access_key_id\" autocomplete=\"username\" required spellcheck=\"false\" autocapitalize=\"none\">")
        .raw("<label for=\"secret_access_key\">Secret access key</label>")
        .raw("<input id=\"secret_access_key\" name=\"secret_access_key\" type=\"password\" autocomplete=\"current-password\" required>")
        .raw("<button type=\"submit\">Sign in</button></form>")
        .raw("<p class=\"hint\">Use a key made with <code>gitsync keys create</code>: you see the account it belongs to, in every region.</p>")
        .raw("</main></body></html>");
    h.into_string()
}

/// An error page for the signed-in frame (a bad link, a target that does not exist).
pub fn problem(message: &str) -> Html {
    let mut h = Html::default();
    h.raw("<h1>Not here</h1><p>")
        .text(message)
        .raw("</p><p><a href=\"/ui/\">Back to every sync target</a></p>");
    h
}

fn status_badge(h: &mut Html, status: &str) {
    let class = match status {
        "SUCCEEDED" => "ok",
        "FAILED" => "bad",
        "INITIATED" | "IN_PROGRESS" | "QUEUED" => "run",
        _ => "none",
    };
    h.raw("<span class=\"badge ")
        .raw(class)
        .raw("\">")
        .text(status)
        .raw("</span>");
}

fn when(h: &mut Html, t: Timestamp, now: Timestamp) {
    h.raw("<time datetime=\"")
        .text(&t.utc_string())
        .raw("\" title=\"")
        .text(&t.utc_string())
        .raw("\">")
        .text(&ago(t, now))
        .raw("</time>");
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago".
fn ago(t: Timestamp, now: Timestamp) -> String {
    let s = (now.millis() - t.millis()).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn type_label(t: SyncType) -> &'static str {
    match t {
        SyncType::CfnStackSync => "Stack",
        SyncType::TemplateSync => "Template version",
        SyncType::ServiceSync => "Service instance",
    }
}

/// The link to a target's page.
pub fn target_query<'a>(
    region: &'a str,
    t: &'a gitsync_model::SyncTarget,
    key: &'a str,
) -> [(&'a str, &'a str); 3] {
    [
        ("region", region),
        ("type", t.sync_type().as_str()),
        ("key", key),
    ]
}

/// How the overview was asked for: its filter and page.
pub struct OverviewQuery<'a> {
    pub filter: &'a TargetFilter,
    pub page: usize,
}

impl OverviewQuery<'_> {
    fn link(&self, page: usize) -> String {
        let page = page.to_string();
        url(
            "/ui/",
            &[
                ("region", self.filter.region.as_deref().unwrap_or("")),
                ("type", self.filter.sync_type.map_or("", |t| t.as_str())),
                ("state", self.filter.state.map_or("", |s| s.as_str())),
                ("q", self.filter.search.as_deref().unwrap_or("")),
                ("page", if page == "1" { "" } else { &page }),
            ],
        )
    }
}

/// Every sync target at a glance.
pub fn overview(
    q: &OverviewQuery,
    regions: &[String],
    rows: &[TargetSummary],
    total: i64,
    now: Timestamp,
) -> Html {
    let f = q.filter;
    let mut h = Html::default();
    h.raw("<h1>Sync targets</h1>")
        .raw("<form class=\"filters\" method=\"get\" action=\"/ui/\" role=\"search\">")
        .raw("<label>Region <select name=\"region\"><option value=\"\">All regions</option>");
    for r in regions {
        option(&mut h, r, r, f.region.as_deref() == Some(r));
    }
    h.raw(
        "</select></label><label>Type <select name=\"type\"><option value=\"\">All types</option>",
    );
    for t in SyncType::ALL {
        option(&mut h, t.as_str(), type_label(*t), f.sync_type == Some(*t));
    }
    h.raw("</select></label><label>Status <select name=\"state\"><option value=\"\">Any status</option>");
    for s in TargetState::ALL {
        let label = match s {
            TargetState::Succeeded => "Succeeded",
            TargetState::Failed => "Failed",
            TargetState::Running => "Running",
            TargetState::NeverSynced => "Not synced yet",
            TargetState::Blocked => "Blocked",
        };
        option(&mut h, s.as_str(), label, f.state == Some(s));
    }
    h.raw("</select></label><label>Name <input type=\"search\" name=\"q\" value=\"")
        .text(f.search.as_deref().unwrap_or(""))
        .raw("\" placeholder=\"part of a name\"></label><button type=\"submit\">Filter</button></form>");
    let running = rows.iter().any(|r| {
        r.waiting.is_some()
            || r.latest.as_ref().is_some_and(|l| {
                matches!(
                    l.status,
                    ResourceSyncStatus::InProgress | ResourceSyncStatus::Initiated
                )
            })
    });
    live_open(&mut h, running);
    let first = (q.page - 1) * PAGE_SIZE;
    if total == 0 {
        h.raw("<p class=\"empty\">No sync target matches. Sync configurations made with <code>aws codeconnections create-sync-configuration</code>, and Proton template and service syncs, appear here.</p>");
    } else {
        h.raw("<p class=\"count\">");
        h.text(&format!(
            "Showing {}–{} of {total} sync target{}",
            first + 1,
            first + rows.len(),
            if total == 1 { "" } else { "s" }
        ));
        h.raw("</p><table class=\"targets\"><caption class=\"sr\">Sync targets</caption><thead><tr>")
            .raw("<th scope=\"col\">Name</th><th scope=\"col\">Type</th><th scope=\"col\">Region</th>")
            .raw("<th scope=\"col\">Repository and branch</th><th scope=\"col\">Latest sync</th>")
            .raw("<th scope=\"col\">Commit</th><th scope=\"col\">When</th><th scope=\"col\">Blockers</th></tr></thead><tbody>");
        for r in rows {
            let key = r.target.key();
            h.raw("<tr><th scope=\"row\" data-label=\"Name\">")
                .link(
                    "/ui/target",
                    &target_query(&r.region, &r.target, &key),
                    &name_of(&r.target),
                )
                .raw("</th><td data-label=\"Type\">")
                .text(type_label(r.target.sync_type()))
                .raw("</td><td data-label=\"Region\">")
                .text(&r.region)
                .raw("</td><td data-label=\"Repository\">")
                .text(&r.repository)
                .raw(" <span class=\"branch\">")
                .text(&r.branch)
                .raw("</span></td><td data-label=\"Latest sync\">");
            match &r.latest {
                Some(l) => status_badge(&mut h, l.status.as_str()),
                None => {
                    h.raw("<span class=\"badge none\">NOT SYNCED YET</span>");
                }
            }
            h.raw("</td><td data-label=\"Commit\"><code>");
            if let Some(l) = &r.latest {
                h.text(short_sha(&l.sha));
            }
            h.raw("</code></td><td data-label=\"When\">");
            if let Some(l) = &r.latest {
                when(&mut h, l.finished_at.unwrap_or(l.started_at), now);
            }
            h.raw("</td><td data-label=\"Blockers\">");
            if r.active_blockers > 0 {
                h.raw("<span class=\"badge bad\">")
                    .num(r.active_blockers)
                    .raw(" active</span>");
            } else {
                h.raw("<span class=\"quiet\">none</span>");
            }
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
        let pages = ((total as usize).div_ceil(PAGE_SIZE)).max(1);
        if pages > 1 {
            h.raw("<nav class=\"pages\" aria-label=\"Pages\">");
            if q.page > 1 {
                h.raw("<a rel=\"prev\" href=\"")
                    .text(&q.link(q.page - 1))
                    .raw("\">Previous</a>");
            }
            h.raw("<span>Page ")
                .num(q.page)
                .raw(" of ")
                .num(pages)
                .raw("</span>");
            if q.page < pages {
                h.raw("<a rel=\"next\" href=\"")
                    .text(&q.link(q.page + 1))
                    .raw("\">Next</a>");
            }
            h.raw("</nav>");
        }
    }
    h.raw("</div>");
    h
}

fn option(h: &mut Html, value: &str, label: &str, selected: bool) {
    h.raw("<option value=\"").text(value).raw("\"");
    if selected {
        h.raw(" selected");
    }
    h.raw(">").text(label).raw("</option>");
}

/// The region that reloads itself while `running`.
fn live_open(h: &mut Html, running: bool) {
    h.raw("<div id=\"live\" aria-live=\"polite\"");
    if running {
        h.raw(" data-running=\"1\"><p class=\"live-note\">A sync is running or due: this part of the page updates itself.</p>");
    } else {
        h.raw(">");
    }
}

/// How a person names a target: `stack`, `template:major`, `service/instance`.
pub fn name_of(t: &gitsync_model::SyncTarget) -> String {
    match t {
        gitsync_model::SyncTarget::ServiceInstance {
            service_name,
            instance_name,
        } => format!("{service_name}/{instance_name}"),
        other => other.display_name(),
    }
}

/// What the target page shows.
pub struct TargetPage<'a> {
    pub summary: &'a TargetSummary,
    pub csrf: &'a str,
    /// Facts of its configuration (label, value), in order.
    pub settings: Vec<(&'static str, String)>,
    pub desired: Option<&'a gitsync_model::Revision>,
    pub latest_successful: Option<&'a ResourceSyncAttempt>,
    /// Blockers that hold it, each with the resource it is filed under (resource, parent).
    pub blockers: Vec<(SyncBlocker, String, Option<String>)>,
    pub history: &'a [HistoryEntry],
    pub older: Option<i64>,
    pub now: Timestamp,
}

pub fn target(p: &TargetPage) -> Html {
    let s = p.summary;
    let key = s.target.key();
    let query = target_query(&s.region, &s.target, &key);
    let mut h = Html::default();
    h.raw("<p class=\"crumbs\"><a href=\"/ui/\">Sync targets</a> › ")
        .text(type_label(s.target.sync_type()))
        .raw("</p><h1>")
        .text(&name_of(&s.target))
        .raw("</h1><p class=\"sub\">")
        .text(s.target.sync_type().as_str())
        .raw(" in ")
        .text(&s.region)
        .raw(" · ")
        .text(&s.repository)
        .raw(" <span class=\"branch\">")
        .text(&s.branch)
        .raw("</span></p>");
    // Actions.
    h.raw("<form class=\"actions\" method=\"post\" action=\"/ui/target/sync\">")
        .hidden("csrf", p.csrf)
        .hidden("region", &s.region)
        .hidden("type", s.target.sync_type().as_str())
        .hidden("key", &key)
        .raw("<button type=\"submit\">Sync now</button> <span class=\"hint\">checks the branch at once and retries the latest commit</span></form>");
    // Blockers: outside the live region, so a reason being typed is never replaced.
    let active: Vec<_> = p
        .blockers
        .iter()
        .filter(|(b, _, _)| b.status == BlockerStatus::Active)
        .collect();
    h.raw("<section aria-labelledby=\"blockers-h\"><h2 id=\"blockers-h\">Blockers</h2>");
    if active.is_empty() {
        h.raw("<p class=\"quiet\">No active blocker: new commits sync as they arrive.</p>");
    }
    for (b, resource, parent) in &active {
        let field = format!("reason-{}", b.id);
        h.raw("<div class=\"blocker\"><p><span class=\"badge bad\">ACTIVE</span> ")
            .text(&b.created_reason)
            .raw("</p><p class=\"quiet\">Raised ");
        when(&mut h, b.created_at, p.now);
        h.raw(" · id <code>").text(&b.id).raw("</code></p>");
        if !b.contexts.is_empty() {
            h.raw("<dl class=\"facts\">");
            for (k, v) in &b.contexts {
                h.raw("<dt>").text(k).raw("</dt><dd>").text(v).raw("</dd>");
            }
            h.raw("</dl>");
        }
        h.raw("<form method=\"post\" action=\"/ui/target/resolve\">")
            .hidden("csrf", p.csrf)
            .hidden("region", &s.region)
            .hidden("type", s.target.sync_type().as_str())
            .hidden("key", &key)
            .hidden("blocker", &b.id)
            .hidden("resource", resource)
            .hidden("parent", parent.as_deref().unwrap_or(""))
            .raw("<label for=\"")
            .text(&field)
            .raw("\">Why is it safe to go on? (recorded as the resolved reason)</label><textarea id=\"")
            .text(&field)
            .raw("\" name=\"reason\" required maxlength=\"1000\" rows=\"2\"></textarea>")
            .raw("<button type=\"submit\">Resolve</button> <span class=\"hint\">then the latest commit is retried, as UpdateSyncBlocker does</span></form></div>");
    }
    let resolved: Vec<_> = p
        .blockers
        .iter()
        .filter(|(b, _, _)| b.status == BlockerStatus::Resolved)
        .collect();
    if !resolved.is_empty() {
        h.raw("<details><summary>Resolved blockers (")
            .num(resolved.len())
            .raw(")</summary><ul>");
        for (b, _, _) in resolved {
            h.raw("<li>").text(&b.created_reason).raw(" — resolved");
            if let Some(at) = b.resolved_at {
                h.raw(" ");
                when(&mut h, at, p.now);
            }
            if let Some(r) = &b.resolved_reason {
                h.raw(": ").text(r);
            }
            h.raw("</li>");
        }
        h.raw("</ul></details>");
    }
    h.raw("</section>");
    // Desired state and configuration.
    h.raw("<section aria-labelledby=\"desired-h\"><h2 id=\"desired-h\">Desired state</h2><dl class=\"facts\">");
    match p.desired {
        Some(d) => {
            fact(
                &mut h,
                "Repository",
                &format!("{}/{} ({})", d.owner_id, d.repository_name, d.provider_type),
            );
            fact(&mut h, "Branch", &d.branch);
            fact(&mut h, "Path", &d.directory);
            h.raw("<dt>Commit</dt><dd><code>")
                .text(&d.sha)
                .raw("</code></dd>");
        }
        None => {
            fact(&mut h, "Repository", &s.repository);
            fact(&mut h, "Branch", &s.branch);
            fact(&mut h, "Path", &s.path);
            fact(
                &mut h,
                "Commit",
                "not read yet: the branch has not been checked",
            );
        }
    }
    for (label, value) in &p.settings {
        fact(&mut h, label, value);
    }
    if let Some(ok) = p.latest_successful {
        h.raw("<dt>Last successful sync</dt><dd><code>")
            .text(short_sha(&ok.target_revision.sha))
            .raw("</code> ");
        when(&mut h, ok.started_at, p.now);
        h.raw("</dd>");
    }
    h.raw("</dl></section>");
    // History: live while an attempt runs.
    let running = s.waiting.is_some()
        || p.history.first().is_some_and(|e| {
            matches!(
                e.attempt.status,
                ResourceSyncStatus::InProgress | ResourceSyncStatus::Initiated
            )
        });
    h.raw("<section aria-labelledby=\"history-h\"><h2 id=\"history-h\">History</h2>");
    live_open(&mut h, running);
    if let Some(sha) = &s.waiting {
        h.raw("<p class=\"live-note\">Commit <code>")
            .text(short_sha(sha))
            .raw("</code> waits for its attempt.</p>");
    }
    if p.history.is_empty() {
        h.raw("<p class=\"empty\">No attempt yet.</p>");
    }
    for (i, e) in p.history.iter().enumerate() {
        attempt(&mut h, e, i == 0, p.now);
    }
    if let Some(older) = p.older {
        let before = older.to_string();
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("before", &before));
        h.raw("<p>")
            .link("/ui/target", &q, "Older attempts")
            .raw("</p>");
    }
    h.raw("</div></section>");
    h
}

fn fact(h: &mut Html, label: &str, value: &str) {
    h.raw("<dt>")
        .text(label)
        .raw("</dt><dd>")
        .text(value)
        .raw("</dd>");
}

/// One attempt: its outcome on one line, its events inside.
fn attempt(h: &mut Html, e: &HistoryEntry, open: bool, now: Timestamp) {
    let a = &e.attempt;
    h.raw("<details class=\"attempt\" id=\"attempt-")
        .num(e.id)
        .raw("\"");
    if open {
        h.raw(" open");
    }
    h.raw("><summary>");
    status_badge(h, a.status.as_str());
    h.raw(" <code>")
        .text(short_sha(&a.target_revision.sha))
        .raw("</code> started ");
    when(h, a.started_at, now);
    if let Some(end) = e.finished_at {
        let secs = (end.millis() - a.started_at.millis()).max(0) as f64 / 1000.0;
        h.text(&format!(", took {secs:.1} s"));
    }
    h.raw("</summary>");
    if a.status == ResourceSyncStatus::Failed
        && let Some(last) = a.events.last()
    {
        h.raw("<p class=\"reason\"><strong>Failure reason:</strong> ")
            .text(&last.event)
            .raw("</p>");
    }
    if a.initial_revision.sha != a.target_revision.sha {
        h.raw("<p class=\"quiet\">From <code>")
            .text(short_sha(&a.initial_revision.sha))
            .raw("</code> to <code>")
            .text(short_sha(&a.target_revision.sha))
            .raw("</code></p>");
    }
    events(h, &a.events);
    h.raw("</details>");
}

fn events(h: &mut Html, events: &[SyncEvent]) {
    if events.is_empty() {
        h.raw("<p class=\"quiet\">No event recorded.</p>");
        return;
    }
    h.raw("<table class=\"events\"><thead><tr><th scope=\"col\">Time (UTC)</th><th scope=\"col\">Event</th><th scope=\"col\">What happened</th><th scope=\"col\">Id</th></tr></thead><tbody>");
    for ev in events {
        h.raw("<tr><td data-label=\"Time\">")
            .text(&ev.time.utc_string())
            .raw("</td><td data-label=\"Event\"><code>")
            .text(&ev.event_type)
            .raw("</code></td><td data-label=\"What happened\">")
            .text(&ev.event)
            .raw("</td><td data-label=\"Id\">")
            .text(ev.external_id.as_deref().unwrap_or(""))
            .raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

/// The account's repositories.
pub fn repositories(
    regions: &[String],
    region: Option<&str>,
    repos: &[RepositorySummary],
    now: Timestamp,
) -> Html {
    let mut h = Html::default();
    h.raw("<h1>Repositories</h1><form class=\"filters\" method=\"get\" action=\"/ui/repositories\"><label>Region <select name=\"region\"><option value=\"\">All regions</option>");
    for r in regions {
        option(&mut h, r, r, region == Some(r));
    }
    h.raw("</select></label><button type=\"submit\">Filter</button></form>");
    let running = repos.iter().any(|r| {
        r.branches.iter().any(|b| {
            b.latest.is_some_and(|(s, _)| {
                matches!(
                    s,
                    RepositorySyncStatus::Initiated
                        | RepositorySyncStatus::InProgress
                        | RepositorySyncStatus::Queued
                )
            })
        })
    });
    live_open(&mut h, running);
    if repos.is_empty() {
        h.raw("<p class=\"empty\">No repository yet: repository links (<code>aws codeconnections create-repository-link</code>) and Proton repositories appear here.</p>");
    } else {
        h.raw("<table class=\"targets\"><caption class=\"sr\">Repositories</caption><thead><tr><th scope=\"col\">Repository</th><th scope=\"col\">Provider</th><th scope=\"col\">Region</th><th scope=\"col\">Branches and their latest repository sync</th></tr></thead><tbody>");
        for r in repos {
            let key = r.key.as_key();
            h.raw("<tr><th scope=\"row\" data-label=\"Repository\">")
                .link(
                    "/ui/repository",
                    &[("region", &r.region), ("key", &key)],
                    &r.name,
                )
                .raw("</th><td data-label=\"Provider\">")
                .text(&r.provider)
                .raw("</td><td data-label=\"Region\">")
                .text(&r.region)
                .raw("</td><td data-label=\"Branches\">");
            if r.branches.is_empty() {
                h.raw("<span class=\"quiet\">not synced yet</span>");
            }
            for b in &r.branches {
                h.raw("<div><span class=\"branch\">")
                    .text(&b.branch)
                    .raw("</span> ");
                if let Some((status, at)) = b.latest {
                    status_badge(&mut h, status.as_str());
                    h.raw(" ");
                    when(&mut h, at, now);
                }
                h.raw(" <span class=\"quiet\">")
                    .text(type_label(b.sync_type))
                    .raw("s</span></div>");
            }
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    h.raw("</div>");
    h
}

/// A repository's repository-sync history.
pub fn repository(
    region: &str,
    key: &str,
    name: &str,
    entries: &[RepositoryHistoryEntry],
    older: Option<i64>,
    now: Timestamp,
) -> Html {
    let mut h = Html::default();
    h.raw("<p class=\"crumbs\"><a href=\"/ui/repositories\">Repositories</a></p><h1>")
        .text(name)
        .raw("</h1><p class=\"sub\">Repository syncs in ")
        .text(region)
        .raw(": each time gitsync read a branch and decided which targets a new commit concerns.</p>");
    let running = entries.first().is_some_and(|e| {
        matches!(
            e.attempt.status,
            RepositorySyncStatus::Initiated
                | RepositorySyncStatus::InProgress
                | RepositorySyncStatus::Queued
        )
    });
    live_open(&mut h, running);
    if entries.is_empty() {
        h.raw("<p class=\"empty\">No repository sync yet.</p>");
    }
    for (i, e) in entries.iter().enumerate() {
        h.raw("<details class=\"attempt\" id=\"attempt-")
            .num(e.id)
            .raw("\"");
        if i == 0 {
            h.raw(" open");
        }
        h.raw("><summary>");
        status_badge(&mut h, e.attempt.status.as_str());
        h.raw(" <span class=\"branch\">")
            .text(&e.branch)
            .raw("</span> ")
            .text(type_label(e.sync_type))
            .raw("s, started ");
        when(&mut h, e.attempt.started_at, now);
        h.raw("</summary>");
        events(&mut h, &e.attempt.events);
        h.raw("</details>");
    }
    if let Some(older) = older {
        let before = older.to_string();
        h.raw("<p>")
            .link(
                "/ui/repository",
                &[("region", region), ("key", key), ("before", &before)],
                "Older repository syncs",
            )
            .raw("</p>");
    }
    h.raw("</div>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = Timestamp(10_000_000);
        assert_eq!(ago(Timestamp(now.0 - 5_000), now), "5 s ago");
        assert_eq!(ago(Timestamp(now.0 - 125_000), now), "2 min ago");
        assert_eq!(ago(Timestamp(now.0 - 7_200_000), now), "2 h ago");
        assert_eq!(ago(Timestamp(now.0 + 5_000), now), "0 s ago");
    }
}
