//! The write-path splitter on a ~100 MB batch of ~500-byte documents in each format: split
//! throughput, and the peak memory a split adds on top of the body it reads.

use std::fmt::Write as _;
use std::time::Instant;

use miroir_filters::routing::ShardId;
use miroir_filters::write::{split, PayloadFormat, Split, SplitInput};

const DOCS: usize = 200_000;
const SHARDS: u32 = 64;
const WORDS: [&str; 16] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "labore",
    "magna",
    "aliqua",
];

/// A tiny deterministic generator, so every run splits the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Product {
    id: String,
    title: String,
    description: String,
    price: f64,
    stock: u64,
    tags: Vec<&'static str>,
    brand: &'static str,
    rating: f64,
}

impl Product {
    fn new(i: usize, rng: &mut Rng) -> Self {
        let mut description = String::new();
        while description.len() < 280 {
            description.push_str(WORDS[rng.below(16) as usize]);
            description.push(' ');
        }
        Self {
            // Half integer ids, half string ids.
            id: if i & 1 == 0 {
                i.to_string()
            } else {
                format!("sku-{i:08}")
            },
            title: format!(
                "{} {} {}",
                WORDS[rng.below(16) as usize],
                WORDS[rng.below(16) as usize],
                i
            ),
            description,
            price: rng.below(100_000) as f64 / 100.0,
            stock: rng.below(1000),
            tags: (0..1 + rng.below(4))
                .map(|_| WORDS[rng.below(16) as usize])
                .collect(),
            brand: WORDS[rng.below(16) as usize],
            rating: rng.below(50) as f64 / 10.0,
        }
    }

    fn json_id(&self) -> String {
        if self.id.starts_with("sku") {
            format!("\"{}\"", self.id)
        } else {
            self.id.clone()
        }
    }

    fn write_json(&self, out: &mut String) {
        let tags: Vec<String> = self.tags.iter().map(|t| format!("\"{t}\"")).collect();
        let _ = write!(
            out,
            r#"{{"id":{},"title":"{}","description":"{} \"quoted\" {{braces}}","price":{},"stock":{},"tags":[{}],"brand":{{"name":"{}","rating":{}}},"available":true}}"#,
            self.json_id(),
            self.title,
            self.description,
            self.price,
            self.stock,
            tags.join(","),
            self.brand,
            self.rating
        );
    }

    fn write_csv(&self, out: &mut String) {
        let _ = writeln!(
            out,
            r#"{},{},"{} ""quoted"", with comma",{},{},{},{},{}"#,
            self.id,
            self.title,
            self.description,
            self.price,
            self.stock,
            self.tags.join("|"),
            self.brand,
            self.rating
        );
    }
}

fn bodies() -> [(&'static str, PayloadFormat, Vec<u8>); 3] {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut json = String::with_capacity(DOCS * 560);
    let mut ndjson = String::with_capacity(DOCS * 560);
    let mut csv = String::with_capacity(DOCS * 480);
    csv.push_str("id,title,description,price:number,stock:number,tags,brand,rating:number\n");
    json.push('[');
    for i in 0..DOCS {
        let p = Product::new(i, &mut rng);
        if i > 0 {
            json.push(',');
        }
        p.write_json(&mut json);
        p.write_json(&mut ndjson);
        ndjson.push('\n');
        p.write_csv(&mut csv);
    }
    json.push(']');
    [
        ("json", PayloadFormat::Json, json.into_bytes()),
        ("ndjson", PayloadFormat::Ndjson, ndjson.into_bytes()),
        (
            "csv",
            PayloadFormat::Csv { delimiter: b',' },
            csv.into_bytes(),
        ),
    ]
}

fn run(body: &[u8], format: PayloadFormat) -> Split {
    let input = SplitInput {
        body,
        format,
        index_primary_key: Some("id"),
        param_primary_key: None,
        shards: SHARDS,
    };
    match split(input) {
        Ok(split) => split,
        Err(e) => panic!("the generated batch must split: {e}"),
    }
}

/// A `/proc/self/status` field, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak memory of one split relative to the body, measured with the high-water mark reset.
fn measure_memory(body: &[u8], format: PayloadFormat, name: &str) {
    // Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("peak memory: cannot reset VmHWM here, skipped");
        return;
    }
    let (Some(before), Some(body_len)) = (status_bytes("VmRSS:"), Some(body.len() as u64)) else {
        println!("peak memory: /proc/self/status unreadable, skipped");
        return;
    };
    let split = run(body, format);
    // Three nodes' bodies over the shard buffers: they must add nothing.
    let nodes: Vec<Vec<ShardId>> = (0..3)
        .map(|n| (0..SHARDS).filter(|s| s % 3 == n).map(ShardId).collect())
        .collect();
    let node_bytes: usize = nodes.iter().map(|shards| split.node_body(shards).1).sum();
    let peak = status_bytes("VmHWM:").unwrap_or(0);
    let added = peak.saturating_sub(before);
    println!(
        "peak memory {name:<6} body {:>6.1} MB, split adds {:>6.1} MB at peak ({:.2}x the body; body + split = {:.2}x), node bodies {:.1} MB as shared chunks",
        body_len as f64 / 1e6,
        added as f64 / 1e6,
        added as f64 / body_len as f64,
        (body_len + added) as f64 / body_len as f64,
        node_bytes as f64 / 1e6,
    );
    drop(split);
}

/// CPU time this thread has run, in seconds: throughput per core even when the machine is
/// shared, where wall time also counts waiting for a core.
fn thread_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn main() {
    let bodies = bodies();
    for (name, format, body) in &bodies {
        measure_memory(body, *format, name);
    }
    for (name, format, body) in &bodies {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        let mut documents = 0;
        for _ in 0..5 {
            let cpu_before = thread_cpu_secs();
            let t = Instant::now();
            let split = run(body, *format);
            wall.push(t.elapsed().as_secs_f64());
            if let (Some(before), Some(after)) = (cpu_before, thread_cpu_secs()) {
                cpu.push(after - before);
            }
            documents = split.documents;
        }
        let mb = body.len() as f64 / 1e6;
        let per_core = match median(&mut cpu) {
            Some(secs) => format!("{:>6.1} MB/s per core (CPU time)", mb / secs),
            None => "CPU time unavailable".to_owned(),
        };
        let wall = median(&mut wall).unwrap_or(f64::NAN);
        println!(
            "split {name:<6} {mb:>6.1} MB, {documents} docs, S={SHARDS}: {per_core}, {:>6.1} MB/s wall (median of 5)",
            mb / wall
        );
    }
}

fn median(samples: &mut [f64]) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}
