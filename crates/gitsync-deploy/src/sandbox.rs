//! Work on templates from repositories, described so that it can run in a child process.
//!
//! MiniJinja's fuel bounds how many steps a template runs, not how much memory it takes: a
//! template of a hundred bytes can double a string forty times. The server therefore checks and
//! renders bundles in a child process of its own (`gitsync` run with [`CHILD_ARGUMENT`]) whose
//! address space and CPU time are capped by the operating system ([`MEMORY_BYTES`],
//! [`CPU_SECONDS`]): a hostile template ends that child, never the server. This module is the
//! protocol (a [`Job`] as JSON on the child's stdin, its [`Outcome`] as JSON on stdout) and the
//! work itself ([`perform`]); the engine starts the child, and the binary's entry point answers it.

use crate::proton::{Bundle, Family, check_bundle, render_dir};
use crate::render::Mode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first argument that makes the `gitsync` binary a sandbox child.
pub const CHILD_ARGUMENT: &str = "__sandbox";
/// The child's address-space limit. A Proton bundle is at most 5 MiB and renders to at most
/// 1 MiB a file; the rest is the program itself.
pub const MEMORY_BYTES: u64 = 1 << 30;
/// The child's CPU-time limit; fuel normally stops a runaway template long before.
pub const CPU_SECONDS: u64 = 20;
/// How long the parent waits for the child in all (the child may be waiting for a core).
pub const WALL_SECONDS: u64 = 60;
/// The most the parent reads from a child's answer: ten files of at most 1 MiB, as JSON.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// What a child is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Job {
    /// Check a bundle for registration ([`check_bundle`]).
    CheckBundle {
        family: Family,
        files: BTreeMap<String, Vec<u8>>,
    },
    /// Render one infrastructure directory of a bundle ([`render_dir`]).
    RenderDir {
        files: BTreeMap<String, Vec<u8>>,
        dir: String,
        context: serde_json::Value,
        mode: Mode,
    },
}

/// What the work came to: the result of the function the job names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Checked(Result<Bundle, Vec<String>>),
    Rendered(Result<Vec<(String, String)>, Vec<String>>),
}

/// Does the work of a job, in this process.
pub fn perform(job: &Job) -> Outcome {
    match job {
        Job::CheckBundle { family, files } => Outcome::Checked(check_bundle(*family, files)),
        Job::RenderDir {
            files,
            dir,
            context,
            mode,
        } => Outcome::Rendered(render_dir(files, dir, context, *mode)),
    }
}

/// Why a job ended without an outcome, in words for the attempt that ran it.
pub fn killed_message(signal: Option<i32>) -> String {
    const SIGABRT: i32 = 6;
    const SIGKILL: i32 = 9;
    const SIGXCPU: i32 = 24;
    match signal {
        Some(SIGABRT) => format!(
            "rendering ran out of its memory budget ({} MiB): the templates build values too large",
            MEMORY_BYTES >> 20
        ),
        Some(SIGXCPU | SIGKILL) => format!(
            "rendering ran out of its time budget ({CPU_SECONDS} s of CPU, {WALL_SECONDS} s in all)"
        ),
        Some(s) => format!("rendering stopped on signal {s}"),
        None => "rendering stopped without an answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_outcomes_cross_as_json() {
        let files: BTreeMap<String, Vec<u8>> = [
            (
                "infrastructure/manifest.yaml".to_string(),
                b"infrastructure:\n  templates:\n    - file: cf.yaml\n".to_vec(),
            ),
            (
                "infrastructure/cf.yaml".to_string(),
                b"Name: {{ environment.name }}\n".to_vec(),
            ),
        ]
        .into();
        let job = Job::RenderDir {
            files,
            dir: "infrastructure".into(),
            context: crate::render::environment_context("dev", &serde_json::json!({})),
            mode: Mode::Deploy,
        };
        let job: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        let outcome = perform(&job);
        let back: Outcome =
            serde_json::from_str(&serde_json::to_string(&outcome).unwrap()).unwrap();
        assert_eq!(
            back,
            Outcome::Rendered(Ok(vec![(
                "infrastructure/cf.yaml".to_string(),
                "Name: dev".to_string()
            )]))
        );
    }
}
