//! The offline verifier under attack: a mutation fuzzer over genuine proofs (runs in CI;
//! `FUZZ_ITERATIONS` sets how many inputs, default 20,000). The libFuzzer harness in `fuzz/`
//! runs the same target for as long as one wants.

use signet_trust::fuzzing::{check, corpus, SplitMix64};

const HEX: &[u8] = b"0123456789abcdefABCDEF";
const INTERESTING: &[&[u8]] = &[b"0", b"1", b"-1", b"18446744073709551615", b"null", b"[]", b"\"\"", b"true", b"{}"];

/// One structure-aware or blind mutation of a genuine JSON proof.
fn mutate(input: &[u8], donor: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len());
        match rng.below(8) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => {
                // A hex digit or a base64 character replaced by another.
                if out[at].is_ascii_alphanumeric() {
                    out[at] = HEX[rng.below(HEX.len())];
                }
            }
            2 => {
                out.remove(at);
            }
            3 => out.insert(at, b"0123456789,:{}[]\"ae"[rng.below(19)]),
            4 => {
                // Splice a span of another genuine proof (paths, heads, records of other events).
                let from = rng.below(donor.len());
                let len = rng.below(64).min(donor.len() - from);
                let end = (at + len).min(out.len());
                out.splice(at..end, donor[from..from + len].iter().copied());
            }
            5 => {
                // A number replaced by an interesting one.
                if out[at].is_ascii_digit() {
                    let mut end = at;
                    while end < out.len() && out[end].is_ascii_digit() {
                        end += 1;
                    }
                    let mut start = at;
                    while start > 0 && out[start - 1].is_ascii_digit() {
                        start -= 1;
                    }
                    out.splice(start..end, INTERESTING[rng.below(INTERESTING.len())].iter().copied());
                }
            }
            6 => {
                // Duplicate a span (repeated path entries, doubled fields).
                let len = rng.below(80).min(out.len() - at);
                let span: Vec<u8> = out[at..at + len].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, span);
            }
            _ => out.truncate(at.max(1)),
        }
        if out.is_empty() {
            out.push(b'{');
        }
    }
    out
}

#[test]
fn the_verifier_never_accepts_a_forged_proof() {
    let corpus = corpus();
    let iterations: usize = std::env::var("FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut rng = SplitMix64(0xf022_5167);
    let inputs: Vec<&[u8]> = corpus
        .inclusion
        .iter()
        .map(|(j, _)| j.as_slice())
        .chain(corpus.consistency.iter().map(|(j, _)| j.as_slice()))
        .collect();
    for input in &inputs {
        check(&corpus, input); // genuine proofs pass the property trivially
    }
    let mut accepted = 0;
    for _ in 0..iterations {
        let input = inputs[rng.below(inputs.len())];
        let donor = inputs[rng.below(inputs.len())];
        let mutated = mutate(input, donor, &mut rng);
        check(&corpus, &mutated);
        if signet_trust::bundle::verify_inclusion(&mutated, &corpus.key).is_ok() {
            accepted += 1;
        }
    }
    // Some mutations are harmless (whitespace, a hex digit's case); they must still vouch only
    // for genuine claims, which `check` asserted. Most must be refused.
    assert!(accepted < iterations / 5, "{accepted} of {iterations} mutated inputs verified");
}

#[test]
fn arbitrary_bytes_are_refused_without_panicking() {
    let corpus = corpus();
    let mut rng = SplitMix64(42);
    for _ in 0..5_000 {
        let len = rng.below(400);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        check(&corpus, &bytes);
    }
}
