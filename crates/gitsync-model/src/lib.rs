//! Domain types and rules of gitsync, free of I/O.
//!
//! Everything here is plain data plus the rules that hold for it whatever stores or serves it:
//! who owns a resource ([`Tenant`]), how resources are named ([`arn`]), what a sync configuration,
//! connection or Proton repository is ([`resources`]), and what a sync attempt records
//! ([`sync`]). The store persists these types; the wire layer translates them to AWS shapes.

pub mod arn;
pub mod githost;
pub mod limits;
pub mod notification;
pub mod resources;
pub mod security;
pub mod sync;
pub mod tenant;
pub mod time;

pub use arn::{Arn, ArnService};
pub use limits::Limits;
pub use resources::*;
pub use security::AccountPolicy;
pub use sync::*;
pub use tenant::Tenant;
pub use time::Timestamp;
