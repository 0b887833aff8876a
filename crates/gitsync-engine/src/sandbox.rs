//! Runs template work ([`gitsync_deploy::sandbox::Job`]) where a hostile template cannot hurt
//! the server: in a child process with capped memory and CPU time (the server's way), or on a
//! blocking thread of this process (tests, and tools rendering their own templates).

use gitsync_deploy::sandbox::{self, Job, Outcome};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where template work runs.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// On a blocking thread of this process: fuel and output caps only.
    #[default]
    InProcess,
    /// In a child process of this program (the `gitsync` binary, which answers
    /// [`sandbox::CHILD_ARGUMENT`]), limited by the operating system.
    ChildProcess(PathBuf),
}

impl Isolation {
    /// Does the job; an `Err` says why it ended without an outcome (a budget it ran out of, a
    /// child that could not start), in words for the attempt.
    pub async fn run(&self, job: Job) -> Result<Outcome, String> {
        match self {
            Isolation::InProcess => tokio::task::spawn_blocking(move || sandbox::perform(&job))
                .await
                .map_err(|e| format!("rendering stopped: {e}")),
            Isolation::ChildProcess(program) => run_child(program, &job).await,
        }
    }
}

async fn run_child(program: &PathBuf, job: &Job) -> Result<Outcome, String> {
    let input = serde_json::to_vec(job).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .arg(sandbox::CHILD_ARGUMENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear()
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start the rendering process {}: {e}",
                program.display()
            )
        })?;
    let (mut stdin, stdout) = (child.stdin.take(), child.stdout.take());
    let work = async {
        if let Some(stdin) = stdin.as_mut() {
            // A child that dies early closes its end: its exit status says why.
            let _ = stdin.write_all(&input).await;
        }
        drop(stdin);
        let mut answer = Vec::new();
        if let Some(stdout) = stdout {
            stdout
                .take(sandbox::MAX_ANSWER_BYTES as u64 + 1)
                .read_to_end(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((answer, status))
    };
    let (answer, status) =
        match tokio::time::timeout(Duration::from_secs(sandbox::WALL_SECONDS), work).await {
            Ok(done) => done?,
            // Dropping the child kills it.
            Err(_) => return Err(sandbox::killed_message(Some(9))),
        };
    if answer.len() > sandbox::MAX_ANSWER_BYTES {
        return Err(format!(
            "rendering answered more than {} MiB",
            sandbox::MAX_ANSWER_BYTES >> 20
        ));
    }
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        return Err(sandbox::killed_message(status.signal()));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("rendering answered nonsense: {e}"))
}
