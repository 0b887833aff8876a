//! Replays every input of the fuzzers' corpora (`fuzz/corpus/<target>/`), including the inputs
//! that once crashed a parser (`fuzz/regressions/<target>/`), through the same entry points the
//! fuzzers call: none may panic.

use std::path::Path;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, run) in gitsync_fuzz::TARGETS {
        let mut inputs = 0;
        for folder in ["corpus", "regressions"] {
            let dir = root.join(folder).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz/corpus/{target} holds no inputs");
        replayed += inputs;
    }
    eprintln!("replayed {replayed} corpus inputs");
}

#[test]
fn the_inputs_that_once_panicked_are_handled() {
    // SigV4 percent-decoding sliced a string inside a character (issue 12).
    gitsync_fuzz::sigv4(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261202/us-east-1/proton/aws4_request, SignedHeaders=host, Signature=00\n20261202T000000Z\na=%aé"
            .as_bytes(),
    );
}
