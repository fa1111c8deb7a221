//! The fuzz targets (`fuzz/`, run with cargo-fuzz on nightly) on stable Rust: every file
//! of each corpus, then seeded mutations of them (bit flips, byte changes, insertions,
//! deletions, truncations, splices) for a fixed number of cases. A panic in a reader fails
//! the test and prints the input that caused it.

use std::path::Path;
use std::time::{Duration, Instant};

/// Mutated cases per target, at most; the time budget may end a target's run sooner.
const CASES: usize = 20_000;
const BUDGET: Duration = Duration::from_secs(15);

/// SplitMix64: a small seeded generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes the readers care about: separators, quotes, digits, signs, brackets.
const INTERESTING: &[u8] = b",\"\n\r\t 0123456789.-+eE[]{}:#naNinfqid\x00\xff";

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            4 => out.truncate(at),
            _ => {
                let from = rng.below(other.len() + 1);
                let len = rng.below(16).min(other.len() - from);
                out.splice(at..at, other[from..from + len].iter().copied());
            }
        }
    }
    out
}

fn run(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut corpus: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let f = f.unwrap();
            (
                f.file_name().to_string_lossy().to_string(),
                std::fs::read(f.path()).unwrap(),
            )
        })
        .collect();
    corpus.sort();
    assert!(!corpus.is_empty(), "{target}: empty corpus");
    for (name, bytes) in &corpus {
        let outcome = std::panic::catch_unwind(|| entry(bytes));
        assert!(outcome.is_ok(), "{target}: corpus file {name} panicked");
    }
    let mut rng = Rng(0x5eed ^ target.len() as u64);
    let started = Instant::now();
    let mut cases = 0;
    while cases < CASES && started.elapsed() < BUDGET {
        let (_, base) = &corpus[rng.below(corpus.len())];
        let (_, other) = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, other);
        let outcome = std::panic::catch_unwind(|| entry(&input));
        assert!(
            outcome.is_ok(),
            "{target}: case {cases} panicked on {:?}",
            String::from_utf8_lossy(&input)
        );
        cases += 1;
    }
    println!(
        "{target}: {} corpus files and {cases} mutated cases without a panic",
        corpus.len()
    );
}

#[test]
fn csv_reader_survives_its_corpus_and_mutations() {
    run("csv", downhill::fuzzing::csv);
}

#[test]
fn libsvm_reader_survives_its_corpus_and_mutations() {
    run("libsvm", downhill::fuzzing::libsvm);
}

#[test]
fn npz_reader_survives_its_corpus_and_mutations() {
    run("npz", downhill::fuzzing::npz);
}

#[test]
fn npy_reader_survives_its_corpus_and_mutations() {
    run("npy", downhill::fuzzing::npy);
}

#[test]
fn parameter_file_reader_survives_its_corpus_and_mutations() {
    run("params", downhill::fuzzing::params);
}

#[test]
fn checkpoint_reader_and_resume_survive_their_corpus_and_mutations() {
    run("checkpoint", downhill::fuzzing::checkpoint);
}

/// The checkpoint corpus is written by fits: `cargo test --release --test fuzz --
/// --ignored write_checkpoint_corpus` rewrites it after a change of format.
#[test]
#[ignore]
fn write_checkpoint_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in downhill::fuzzing::checkpoint_seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
