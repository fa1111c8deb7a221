//! Writes a synthetic click log for the hashed-columns benchmark: `cargo run --release
//! --example click_log -- ROWS PATH`. Columns: `hour` (0–23) and `price` (numbers), eight
//! categorical columns `c1`…`c8` of 10 to 10⁷ values each, Zipf-distributed (a few values
//! in most rows, a long tail), and the label `clicked`, drawn from a logistic model whose
//! weight of each `column=value` token comes from the token's own hash, so the file holds
//! a signal that the hashing trick can find. Rows are drawn from counter-based hashes:
//! the same ROWS give the same file.

use std::io::Write;

use downhill::hashing::murmur3_x86_32;
use downhill::rng::cell_hash;

/// Values each categorical column draws from.
const CARDINALITY: [u32; 8] = [
    10, 100, 1_000, 10_000, 100_000, 1_000_000, 3_000_000, 10_000_000,
];

/// A uniform draw in (0, 1) from a hash word.
fn unit(word: u32) -> f64 {
    (f64::from(word) + 0.5) / 4_294_967_296.0
}

/// A Zipf-like draw (exponent about 1.1) from `n` values: rank ⌊n^u⌋ − 1 with u uniform
/// makes rank r about as likely as 1/r.
fn zipf(word: u32, n: u32) -> u32 {
    let u = unit(word);
    ((f64::from(n).powf(u)) as u32).saturating_sub(1).min(n - 1)
}

/// The true weight of a token: its hash, spread over about ±1.
fn weight(token: &[u8]) -> f64 {
    (unit(murmur3_x86_32(token, 7)) - 0.5) * 2.0
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rows), Some(path)) = (args.get(1).and_then(|r| r.parse::<u32>().ok()), args.get(2))
    else {
        eprintln!("usage: click_log ROWS PATH");
        std::process::exit(2);
    };
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 22, file);
    writeln!(out, "hour,price,c1,c2,c3,c4,c5,c6,c7,c8,clicked")?;
    let mut token = Vec::with_capacity(32);
    let mut line = String::with_capacity(128);
    for i in 0..rows {
        let [a, b, c, d] = cell_hash(2026, 0, i, 0);
        let [e, f, g, h] = cell_hash(2026, 0, i, 1);
        let [p, q, label_word, _] = cell_hash(2026, 0, i, 2);
        let hour = a % 24;
        let price = (unit(p) * 100.0).round() / 10.0;
        let mut z = -1.0 + 0.02 * (f64::from(hour) - 12.0) - 0.05 * price;
        line.clear();
        line.push_str(&format!("{hour},{price}"));
        for (c, (&word, &n)) in [b, c, d, e, f, g, h, q]
            .iter()
            .zip(&CARDINALITY)
            .enumerate()
        {
            let value = zipf(word, n);
            token.clear();
            token.extend_from_slice(format!("c{}=v{value}", c + 1).as_bytes());
            z += weight(&token);
            line.push_str(&format!(",v{value}"));
        }
        let clicked = unit(label_word) < 1.0 / (1.0 + (-z).exp());
        writeln!(out, "{line},{}", u8::from(clicked))?;
    }
    out.flush()
}
