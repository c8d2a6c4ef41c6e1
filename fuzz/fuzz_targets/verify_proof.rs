//! `cargo +nightly fuzz run verify_proof`: arbitrary bytes into the offline verifier, which must
//! refuse them or vouch only for what a genuine proof vouches for (see signet_trust::fuzzing).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet_trust::fuzzing::{check, corpus, Corpus};

static CORPUS: OnceLock<Corpus> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    check(CORPUS.get_or_init(corpus), data);
});
