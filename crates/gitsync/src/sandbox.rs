//! The child side of the template sandbox (`gitsync __sandbox`, started by the engine): caps its
//! own address space and CPU time, reads a job as JSON on stdin, does it, and writes the outcome
//! as JSON on stdout. A template that takes too much ends this process, not the server.

use gitsync_deploy::sandbox::{CPU_SECONDS, Job, MEMORY_BYTES, perform};
use std::io::{Read, Write};
use std::process::ExitCode;

pub fn child() -> ExitCode {
    if let Err(e) = limit(libc::RLIMIT_AS, MEMORY_BYTES).and(limit(libc::RLIMIT_CPU, CPU_SECONDS)) {
        eprintln!("error: cannot limit the sandbox: {e}");
        return ExitCode::FAILURE;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("error: cannot read the job: {e}");
        return ExitCode::FAILURE;
    }
    let job: Job = match serde_json::from_slice(&input) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("error: not a sandbox job: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(input);
    let outcome = perform(&job);
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &outcome)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the outcome: {e}");
            ExitCode::FAILURE
        }
    }
}

fn limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    if unsafe { libc::setrlimit(resource, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
