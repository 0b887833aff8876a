//! Tells the outside world what gitsync did, as deliverers of the engine's outbox (each called
//! at least once per message; the engine records what it answers):
//! - [`HttpNotifications`]: status-change notifications POSTed to the HTTP endpoints each tenant
//!   registers, signed with the endpoint's secret (`notifications`);
//! - [`CommitStatuses`]: commit statuses posted to Git hosts' REST APIs (`githost`);
//! - [`PullRequestComments`]: pull request previews, one comment per stack kept up to date.
//!
//! [`GitHosts`] also lists repositories' open pull requests for the engine.
//!
//! The crate's one HTTP client (`http`) is hyper with rustls, the versions the AWS SDK already
//! builds.

mod githost;
mod http;
mod notifications;

pub use githost::{CommitStatuses, GitHosts, PullRequestComments};
pub use notifications::{
    DELIVERY_HEADER, EVENT_HEADER, HttpNotifications, SIGNATURE_HEADER, check_url, signature,
};
