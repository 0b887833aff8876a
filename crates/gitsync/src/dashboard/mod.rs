//! The dashboard at `/ui/`: every sync target of the signed-in account at a glance, a target's
//! desired state and whole history with its blockers ("Resolve", "Sync now"), and repositories
//! with their repository syncs. Pages are written on the server (no build step, nothing to
//! install); one small script reloads the part of a page that changes while a sync runs.
//! docs/dashboard.md says what it shows and how it is protected.

mod html;
mod pages;
mod session;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gitsync_engine::Engine;
use gitsync_model::{BlockerStatus, SyncBlocker, SyncTarget, SyncType, Tenant, Timestamp};
use gitsync_store::{HistoryFilter, Store, StoreError, TargetFilter, TargetState, TargetSummary};
use html::Html;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use pages::Banner;
use serde::Deserialize;
use session::{SIGNIN_COOKIE, Sessions, SignInError, SignedIn};
use std::sync::Arc;

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Forms are a few fields; anything larger is refused before it is read.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The longest resolved reason kept (UpdateSyncBlocker's own limit is larger; a page keeps it short).
const MAX_REASON_CHARS: usize = 1000;

#[derive(Clone)]
struct Dashboard {
    store: Store,
    engine: Arc<Engine>,
    sessions: Arc<Sessions>,
}

/// The dashboard's routes, all under `/ui`.
pub fn router(store: Store, engine: Arc<Engine>) -> Router {
    let dashboard = Dashboard {
        sessions: Arc::new(Sessions::new(store.clone())),
        store,
        engine,
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview))
        .route("/ui/signin", get(sign_in_form).post(sign_in))
        .route("/ui/signout", post(sign_out))
        .route("/ui/target", get(target))
        .route("/ui/target/sync", post(sync_now))
        .route("/ui/target/resolve", post(resolve))
        .route("/ui/repositories", get(repositories))
        .route("/ui/repository", get(repository))
        .route(
            "/ui/assets/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/ui/assets/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(protect))
        .with_state(dashboard)
}

/// What every dashboard answer carries: no framing, no sniffing, no inline script, no caching
/// of pages that show an account's data.
async fn protect(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "<!doctype html><title>Not found · gitsync</title><p>No such dashboard page. <a href=\"/ui/\">Sync targets</a></p>".into(),
    )
}

/// A failure reading the database: logged, and said plainly (no detail for the browser).
fn unavailable(error: StoreError) -> Response {
    tracing::error!(error = %error, "the dashboard cannot read the database");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        "<!doctype html><title>Unavailable · gitsync</title><p>gitsync cannot read its database just now; the error is in its log. Try again shortly.</p>".into(),
    )
}

fn forbidden(message: &str) -> Response {
    let mut h = Html::default();
    h.raw("<!doctype html><title>Refused · gitsync</title><p>")
        .text(message)
        .raw(" <a href=\"/ui/\">Back to the dashboard</a></p>");
    html(StatusCode::FORBIDDEN, h.into_string())
}

/// Whether a region name is shaped like one (what a SigV4 scope may name).
fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// The signed-in session of a page's request; without one, the page answers by sending the
/// browser to sign in.
struct Viewer(SignedIn);

impl axum::extract::FromRequestParts<Dashboard> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        d: &Dashboard,
    ) -> Result<Self, Self::Rejection> {
        match d.sessions.signed_in(&parts.headers).await {
            Ok(Some(s)) => Ok(Viewer(s)),
            Ok(None) => Err(see_other("/ui/signin")),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl Dashboard {
    /// The session of a state-changing request, whose form must carry its CSRF token.
    async fn session_for_change(
        &self,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Result<SignedIn, Response> {
        let session = match self.sessions.signed_in(headers).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(forbidden(
                    "You are not signed in (or your session ended): sign in and try again.",
                ));
            }
            Err(e) => return Err(unavailable(e)),
        };
        if !self.sessions.csrf_ok(&session, csrf) {
            return Err(forbidden(
                "This request did not come from a gitsync page of your session (its CSRF token is missing or wrong), so nothing was changed.",
            ));
        }
        Ok(session)
    }
}

/// A link or form that names nothing that can be: said on a page of the frame.
fn bad_link(s: &SignedIn, title: &str, message: &str) -> Response {
    framed(
        StatusCode::BAD_REQUEST,
        title,
        s,
        &pages::problem(message),
        None,
    )
}

fn framed(
    status: StatusCode,
    title: &str,
    s: &SignedIn,
    body: &Html,
    banner: Option<&Banner>,
) -> Response {
    html(
        status,
        pages::page(title, &s.account_id, &s.csrf, body, banner),
    )
}

// ----- sign-in -----

fn sign_in_page(status: StatusCode, error: Option<&str>, secure: bool) -> Response {
    let token = session::new_form_token();
    let mut response = html(status, pages::sign_in(&token, error));
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        SIGNIN_COOKIE,
        &token,
        "/ui/signin",
        3600,
        secure,
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn sign_in_form(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match d.sessions.signed_in(&headers).await {
        Ok(Some(_)) => see_other("/ui/"),
        Ok(None) => sign_in_page(StatusCode::OK, None, session::is_https(&headers)),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
}

async fn sign_in(State(d): State<Dashboard>, headers: HeaderMap, body: Bytes) -> Response {
    let secure = session::is_https(&headers);
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_page(
            StatusCode::BAD_REQUEST,
            Some("The sign-in form could not be read; sign in again."),
            secure,
        );
    };
    if !session::signin_token_ok(&headers, &form.csrf) {
        return sign_in_page(
            StatusCode::FORBIDDEN,
            Some("This sign-in form expired or came from another site; sign in again."),
            secure,
        );
    }
    match d
        .sessions
        .sign_in(&form.access_key_id, &form.secret_access_key, secure)
        .await
    {
        Ok(cookie) => {
            tracing::info!(access_key_id = %form.access_key_id.trim(), "dashboard sign-in");
            let mut response = see_other("/ui/");
            let h = response.headers_mut();
            for c in [
                cookie,
                session::set_cookie(SIGNIN_COOKIE, "", "/ui/signin", 0, secure),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(SignInError::WrongKey) => {
            tracing::warn!("dashboard sign-in refused: unknown access key or wrong secret");
            sign_in_page(
                StatusCode::UNAUTHORIZED,
                Some(
                    "That access key ID and secret access key do not sign in: check both (gitsync keys list shows the key ids).",
                ),
                secure,
            )
        }
        Err(SignInError::Store(e)) => unavailable(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(State(d): State<Dashboard>, headers: HeaderMap, body: Bytes) -> Response {
    let csrf = serde_urlencoded::from_bytes::<CsrfForm>(&body)
        .map(|f| f.csrf)
        .unwrap_or_default();
    let s = match d.session_for_change(&headers, &csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match d.sessions.sign_out(&s, session::is_https(&headers)).await {
        Ok(cookie) => {
            let mut response = see_other("/ui/signin");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => unavailable(e),
    }
}

// ----- the overview -----

#[derive(Deserialize, Default)]
struct OverviewParams {
    region: Option<String>,
    #[serde(rename = "type")]
    sync_type: Option<String>,
    state: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// A filter value: empty means "any"; one that names nothing known is a bad link.
fn choice<T>(
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Option<T>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .ok_or_else(|| format!("There is no {what} '{v}'.")),
    }
}

async fn overview(
    State(d): State<Dashboard>,
    Viewer(s): Viewer,
    Query(p): Query<OverviewParams>,
) -> Response {
    let filter = (|| -> Result<(TargetFilter, usize), String> {
        let region = choice(
            p.region.as_deref(),
            |r| is_region(r).then(|| r.to_string()),
            "region",
        )?;
        let sync_type = choice(p.sync_type.as_deref(), SyncType::parse, "sync type")?;
        let state = choice(p.state.as_deref(), TargetState::parse, "status filter")?;
        let page = choice(
            p.page.as_deref(),
            |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            },
            "page",
        )?
        .unwrap_or(1);
        let search =
            p.q.as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(|q| q.chars().take(200).collect());
        Ok((
            TargetFilter {
                region,
                sync_type,
                state,
                search,
                key: None,
            },
            page,
        ))
    })();
    let (filter, page) = match filter {
        Ok(f) => f,
        Err(message) => {
            return bad_link(&s, "Sync targets", &message);
        }
    };
    let regions = match d.store.dashboard_regions(&s.account_id).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let (rows, total) = match d
        .store
        .dashboard_targets(
            &s.account_id,
            &filter,
            (page - 1) * pages::PAGE_SIZE,
            pages::PAGE_SIZE,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let body = pages::overview(
        &pages::OverviewQuery {
            filter: &filter,
            page,
        },
        &regions,
        &rows,
        total,
        Timestamp::now(),
    );
    framed(StatusCode::OK, "Sync targets", &s, &body, None)
}

// ----- a target -----

#[derive(Deserialize, Default)]
struct TargetParams {
    #[serde(default)]
    region: String,
    #[serde(rename = "type", default)]
    sync_type: String,
    #[serde(default)]
    key: String,
    before: Option<String>,
    notice: Option<String>,
}

/// A target named by a page's link or form, checked.
struct Named {
    tenant: Tenant,
    target: SyncTarget,
}

fn named(account_id: &str, region: &str, sync_type: &str, key: &str) -> Result<Named, String> {
    if !is_region(region) {
        return Err("That link names no region.".into());
    }
    let sync_type = SyncType::parse(sync_type).ok_or("That link names no sync type.")?;
    let target = SyncTarget::from_key(sync_type, key)
        .filter(|_| !key.is_empty() && key.len() <= 1024)
        .ok_or("That link names no sync target.")?;
    Ok(Named {
        tenant: Tenant::new(account_id, region),
        target,
    })
}

/// The blockers that hold a target, each with the resource it is filed under.
async fn blockers_of(
    store: &Store,
    tenant: &Tenant,
    target: &SyncTarget,
) -> Result<Vec<(SyncBlocker, String, Option<String>)>, StoreError> {
    let scopes: Vec<(String, Option<String>)> = match target {
        SyncTarget::CfnStack { stack_name } => vec![(stack_name.clone(), None)],
        SyncTarget::TemplateVersion { template_name, .. } => vec![(template_name.clone(), None)],
        SyncTarget::ServiceInstance {
            service_name,
            instance_name,
        } => vec![
            (instance_name.clone(), Some(service_name.clone())),
            (service_name.clone(), None),
        ],
    };
    let mut out = Vec::new();
    for (resource, parent) in scopes {
        for b in store
            .latest_blockers(tenant, target.sync_type(), &resource, parent.as_deref(), 10)
            .await?
        {
            out.push((b, resource.clone(), parent.clone()));
        }
    }
    Ok(out)
}

impl Dashboard {
    /// The target's row of the overview (it must still sync: its configuration exists).
    async fn summary(&self, n: &Named) -> Result<Option<TargetSummary>, StoreError> {
        let filter = TargetFilter {
            region: Some(n.tenant.region.clone()),
            sync_type: Some(n.target.sync_type()),
            key: Some(n.target.key()),
            ..TargetFilter::default()
        };
        let (rows, _) = self
            .store
            .dashboard_targets(&n.tenant.account_id, &filter, 0, 1)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The target's page, with a banner after an action.
    async fn target_page(
        &self,
        s: &SignedIn,
        n: &Named,
        before: Option<i64>,
        status: StatusCode,
        banner: Option<Banner>,
    ) -> Response {
        let title = pages::name_of(&n.target);
        let Some(summary) = (match self.summary(n).await {
            Ok(s) => s,
            Err(e) => return unavailable(e),
        }) else {
            let body = pages::problem(&format!(
                "No {} named {title} syncs in {} for this account.",
                n.target.sync_type().as_str(),
                n.tenant.region
            ));
            return framed(StatusCode::NOT_FOUND, &title, s, &body, None);
        };
        let read = async {
            let state = self.store.resource_sync_state(&n.tenant, &n.target).await?;
            let filter = HistoryFilter {
                sync_type: Some(n.target.sync_type()),
                key: Some(n.target.key()),
                ..HistoryFilter::default()
            };
            let (history, older) = self
                .store
                .resource_history(&n.tenant, &filter, before, pages::HISTORY_PAGE)
                .await?;
            let blockers = blockers_of(&self.store, &n.tenant, &n.target).await?;
            let settings = self.settings(n).await?;
            Ok::<_, StoreError>((state, history, older, blockers, settings))
        };
        let (state, history, older, blockers, settings) = match read.await {
            Ok(r) => r,
            Err(e) => return unavailable(e),
        };
        let page = pages::TargetPage {
            summary: &summary,
            csrf: &s.csrf,
            settings,
            desired: state.as_ref().and_then(|st| st.desired_state.as_ref()),
            latest_successful: state
                .as_ref()
                .and_then(|st| st.latest_successful_sync.as_ref()),
            blockers,
            history: &history,
            older,
            now: Timestamp::now(),
        };
        framed(status, &title, s, &pages::target(&page), banner.as_ref())
    }

    /// The facts of a target's configuration worth showing beside its desired state.
    async fn settings(&self, n: &Named) -> Result<Vec<(&'static str, String)>, StoreError> {
        let on_off = |v: Option<bool>| {
            if v == Some(true) {
                "enabled"
            } else {
                "disabled"
            }
            .to_string()
        };
        Ok(match &n.target {
            SyncTarget::CfnStack { stack_name } => {
                let c = self
                    .store
                    .get_sync_configuration(&n.tenant, stack_name)
                    .await?;
                vec![
                    ("Deployment file", c.config_file),
                    ("Role", c.role_arn),
                    ("Repository link", c.repository_link_id),
                    (
                        "Update trigger",
                        c.trigger_resource_update_on
                            .map_or("ANY_CHANGE".to_string(), |t| t.as_str().to_string()),
                    ),
                    ("Commit statuses", on_off(c.publish_deployment_status)),
                    ("Pull request previews", on_off(c.pull_request_comment)),
                ]
            }
            SyncTarget::TemplateVersion {
                template_name,
                template_type,
                ..
            } => {
                let c = self
                    .store
                    .get_template_sync_config(&n.tenant, template_name, *template_type)
                    .await?;
                vec![(
                    "Subdirectory",
                    c.subdirectory
                        .unwrap_or_else(|| "(the repository's root)".into()),
                )]
            }
            SyncTarget::ServiceInstance { service_name, .. } => {
                let c = self
                    .store
                    .get_service_sync_config(&n.tenant, service_name)
                    .await?;
                vec![("Proton-ops file", c.file_path)]
            }
        })
    }
}

fn notice(which: Option<&str>) -> Option<Banner> {
    let text = match which? {
        "resolved" => "Blocker resolved: gitsync retries the latest commit now.",
        "sync" => "Sync requested: gitsync checks the branch now and retries the latest commit.",
        _ => return None,
    };
    Some(Banner::Notice(text.into()))
}

async fn target(
    State(d): State<Dashboard>,
    Viewer(s): Viewer,
    Query(p): Query<TargetParams>,
) -> Response {
    let n = match named(&s.account_id, &p.region, &p.sync_type, &p.key) {
        Ok(n) => n,
        Err(m) => {
            return bad_link(&s, "Sync target", &m);
        }
    };
    let before = p.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    d.target_page(&s, &n, before, StatusCode::OK, notice(p.notice.as_deref()))
        .await
}

#[derive(Deserialize, Default)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    region: String,
    #[serde(rename = "type", default)]
    sync_type: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    blocker: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    reason: String,
}

/// Reads an action's form and checks its session, token and target.
async fn action(
    d: &Dashboard,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(SignedIn, Named, ActionForm), Response> {
    let form = serde_urlencoded::from_bytes::<ActionForm>(body)
        .map_err(|_| forbidden("The form could not be read, so nothing was changed."))?;
    let s = d.session_for_change(headers, &form.csrf).await?;
    let n = named(&s.account_id, &form.region, &form.sync_type, &form.key)
        .map_err(|m| bad_link(&s, "Sync target", &m))?;
    Ok((s, n, form))
}

fn back_to(n: &Named, notice: &str) -> Response {
    let key = n.target.key();
    see_other(&html::url(
        "/ui/target",
        &[
            ("region", &n.tenant.region),
            ("type", n.target.sync_type().as_str()),
            ("key", &key),
            ("notice", notice),
        ],
    ))
}

/// "Resolve": as UpdateSyncBlocker, the blocker is resolved with the reason given and the latest
/// commit retried, in one transaction.
async fn resolve(State(d): State<Dashboard>, headers: HeaderMap, body: Bytes) -> Response {
    let (s, n, form) = match action(&d, &headers, &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reason = form.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        let message = format!(
            "Say why the blocker can be resolved (1 to {MAX_REASON_CHARS} characters); it was not resolved."
        );
        return d
            .target_page(
                &s,
                &n,
                None,
                StatusCode::BAD_REQUEST,
                Some(Banner::Error(message)),
            )
            .await;
    }
    match d
        .store
        .resolve_blocker(
            &n.tenant,
            n.target.sync_type(),
            Some(&form.resource),
            &form.blocker,
            reason,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(account = %s.account_id, access_key_id = %s.access_key_id, region = %n.tenant.region, blocker = %form.blocker, target = %n.target.describe(), "blocker resolved from the dashboard");
            d.engine.wake();
            back_to(&n, "resolved")
        }
        Err(StoreError::NotFound(m) | StoreError::Conflict(m)) => {
            d.target_page(&s, &n, None, StatusCode::CONFLICT, Some(Banner::Error(m)))
                .await
        }
        Err(e) => unavailable(e),
    }
}

/// "Sync now": the branch is checked at once and the latest commit retried, unless a blocker
/// holds the target (a person resolves that first).
async fn sync_now(State(d): State<Dashboard>, headers: HeaderMap, body: Bytes) -> Response {
    let (s, n, _) = match action(&d, &headers, &body).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let work = async {
        let Some(summary) = d.summary(&n).await? else {
            return Ok(Err(
                "This target no longer syncs: its configuration was deleted.".to_string(),
            ));
        };
        let blockers = blockers_of(&d.store, &n.tenant, &n.target).await?;
        if let Some((b, _, _)) = blockers
            .iter()
            .find(|(b, _, _)| b.status == BlockerStatus::Active)
        {
            return Ok(Err(format!(
                "Not synced: an active blocker holds this target ({}). Resolve it first.",
                b.created_reason
            )));
        }
        let retried = d
            .store
            .retry_target(&n.tenant, n.target.sync_type(), &n.target.key())
            .await?;
        let checks = d
            .store
            .trigger_repository_branch(&n.tenant, &summary.repository_key, &summary.branch)
            .await?;
        if !retried && checks == 0 {
            return Ok(Err(format!(
                "Nothing to sync yet: no branch check watches {} {}.",
                summary.repository, summary.branch
            )));
        }
        Ok::<_, StoreError>(Ok(()))
    };
    match work.await {
        Ok(Ok(())) => {
            tracing::info!(account = %s.account_id, access_key_id = %s.access_key_id, region = %n.tenant.region, target = %n.target.describe(), "sync requested from the dashboard");
            d.engine.wake();
            back_to(&n, "sync")
        }
        Ok(Err(m)) => {
            d.target_page(&s, &n, None, StatusCode::CONFLICT, Some(Banner::Error(m)))
                .await
        }
        Err(e) => unavailable(e),
    }
}

// ----- repositories -----

#[derive(Deserialize, Default)]
struct RepositoryParams {
    region: Option<String>,
    key: Option<String>,
    before: Option<String>,
}

async fn repositories(
    State(d): State<Dashboard>,
    Viewer(s): Viewer,
    Query(p): Query<RepositoryParams>,
) -> Response {
    let region = match choice(
        p.region.as_deref(),
        |r| is_region(r).then(|| r.to_string()),
        "region",
    ) {
        Ok(r) => r,
        Err(m) => {
            return bad_link(&s, "Repositories", &m);
        }
    };
    let read = async {
        let regions = d.store.dashboard_regions(&s.account_id).await?;
        let repos = d
            .store
            .dashboard_repositories(&s.account_id, region.as_deref())
            .await?;
        Ok::<_, StoreError>((regions, repos))
    };
    match read.await {
        Ok((regions, repos)) => {
            let body = pages::repositories(&regions, region.as_deref(), &repos, Timestamp::now());
            framed(StatusCode::OK, "Repositories", &s, &body, None)
        }
        Err(e) => unavailable(e),
    }
}

async fn repository(
    State(d): State<Dashboard>,
    Viewer(s): Viewer,
    Query(p): Query<RepositoryParams>,
) -> Response {
    let region = p.region.unwrap_or_default();
    let key = p.key.unwrap_or_default();
    if !is_region(&region) || key.is_empty() || key.len() > 1024 {
        return bad_link(&s, "Repository", "That link names no repository.");
    }
    let before = p.before.as_deref().and_then(|b| b.parse::<i64>().ok());
    let read = async {
        // The repository must be the account's, in that region.
        let repos = d
            .store
            .dashboard_repositories(&s.account_id, Some(&region))
            .await?;
        let Some(repo) = repos.into_iter().find(|r| r.key.as_key() == key) else {
            return Ok(None);
        };
        let tenant = Tenant::new(&s.account_id, &region);
        let (entries, older) = d
            .store
            .repository_history(&tenant, &repo.key, before, pages::HISTORY_PAGE)
            .await?;
        Ok::<_, StoreError>(Some((repo, entries, older)))
    };
    match read.await {
        Ok(Some((repo, entries, older))) => {
            let body =
                pages::repository(&region, &key, &repo.name, &entries, older, Timestamp::now());
            framed(StatusCode::OK, &repo.name, &s, &body, None)
        }
        Ok(None) => framed(
            StatusCode::NOT_FOUND,
            "Repository",
            &s,
            &pages::problem("This account has no such repository in that region."),
            None,
        ),
        Err(e) => unavailable(e),
    }
}
