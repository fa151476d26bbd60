//! Real-node measurements: a generated corpus and query set (`corpus`), and one-at-a-time
//! search latency against several targets (`latency`). `bench/real_nodes.sh` starts the real
//! Meilisearch nodes, nginx and Miroir these run against.

use std::io::Write;
use std::time::Instant;

use serde_json::json;

use crate::http::{Conn, Request};
use crate::{Args, Report};

/// A small deterministic generator (xorshift64*): the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A Zipf-like pick from `0..n`: small ranks are frequent, as words are in text.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ren", "tos", "va", "bri", "den", "sol", "ma", "ter", "qui", "no", "pla",
    "zen", "dor", "fi", "gra", "hel", "jun", "lux", "mor", "sta", "vel",
];

fn vocabulary(rng: &mut Rng, size: usize) -> Vec<String> {
    let mut words = Vec::with_capacity(size);
    while words.len() < size {
        let n = 2 + rng.below(3);
        let w: String = (0..n)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
            .collect();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words
}

fn sentence(rng: &mut Rng, words: &[String], len: usize) -> String {
    (0..len)
        .map(|_| words[rng.zipf(words.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `corpus --documents N --out FILE --queries N --queries-out FILE`: NDJSON documents (title,
/// overview, genre, year, rating) and one search body per line: one to three words, some
/// with a filter, a sort or facets, all 20 hits.
pub fn corpus(args: Args) -> Result<(), String> {
    let documents: usize = args.num("documents", 60_000)?;
    let queries: usize = args.num("queries", 400)?;
    let out = args.get("out").ok_or("--out is required")?;
    let queries_out = args.get("queries-out").ok_or("--queries-out is required")?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let words = vocabulary(&mut rng, 5_000);
    let genres = [
        "drama",
        "comedy",
        "action",
        "horror",
        "romance",
        "thriller",
        "documentary",
        "animation",
    ];

    let file = std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
    let mut w = std::io::BufWriter::new(file);
    for id in 0..documents {
        let title_len = 1 + rng.below(4);
        let overview_len = 20 + rng.below(60);
        let doc = json!({
            "id": id,
            "title": sentence(&mut rng, &words, title_len),
            "overview": sentence(&mut rng, &words, overview_len),
            "genre": genres[rng.below(genres.len())],
            "year": 1950 + rng.below(75),
            "rating": rng.below(100) as f64 / 10.0,
        });
        writeln!(w, "{doc}").map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;

    let file = std::fs::File::create(queries_out).map_err(|e| format!("{queries_out}: {e}"))?;
    let mut w = std::io::BufWriter::new(file);
    for i in 0..queries {
        // Query words drawn from the frequent half of the vocabulary, so most queries match.
        let n = 1 + rng.below(3);
        let q = (0..n)
            .map(|_| words[rng.zipf(words.len() / 2)].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut body = json!({ "q": q, "limit": 20 });
        match i % 10 {
            7 => body["filter"] = json!(format!("year > {}", 1950 + rng.below(70))),
            8 => body["sort"] = json!(["rating:desc"]),
            9 => body["facets"] = json!(["genre"]),
            _ => {}
        }
        writeln!(w, "{body}").map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// One target of `latency`: a name and an address.
struct Target {
    name: String,
    addr: String,
    conn: Option<Conn>,
    report: Report,
    /// Per query, microseconds.
    per_query: Vec<u32>,
}

impl Target {
    async fn connect(name: &str, addr: &str) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            addr: addr.to_owned(),
            conn: Some(
                Conn::connect(addr)
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?,
            ),
            report: Report::default(),
            per_query: Vec::new(),
        })
    }
}

/// `latency --targets name=host:port,... --queries FILE --index UID [--key KEY] [--rounds 1]
/// [--max-of a,b] [--together a,b] [--per-query FILE]`: every query sent to every target,
/// one request at a time, on one keep-alive connection each, the targets in a new order for
/// every query. `--max-of` also reports, per query, the slower of those targets (the floor
/// of a search that waits for all of them). `--together a,b` adds a step that asks those
/// targets at once and waits for all of them: the floor of a fan-out on this machine, where
/// the nodes share its cores while they work, with no proxy in between. `--per-query` writes
/// every query's time per target.
pub async fn latency(args: Args) -> Result<(), String> {
    let key = args.get("key");
    let index = args.get("index").unwrap_or("movies");
    let rounds: usize = args.num("rounds", 1)?;
    let path = format!("/indexes/{index}/search");
    let file = args.get("queries").ok_or("--queries is required")?;
    let bodies: Vec<String> = std::fs::read_to_string(file)
        .map_err(|e| format!("{file}: {e}"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let mut targets = Vec::new();
    for spec in args
        .get("targets")
        .ok_or("--targets is required")?
        .split(',')
    {
        let (name, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("target `{spec}` is not name=host:port"))?;
        targets.push(Target::connect(name, addr).await?);
    }
    let requests: Vec<Vec<Request>> = targets
        .iter()
        .map(|t| {
            bodies
                .iter()
                .map(|b| Request::new("POST", &t.addr, &path, key, Some(b)))
                .collect()
        })
        .collect();

    let mut together = match args.get("together") {
        Some(names) => {
            let mut members = Vec::new();
            for n in names.split(',') {
                let t = targets
                    .iter()
                    .position(|t| t.name == n)
                    .ok_or_else(|| format!("--together names unknown target `{n}`"))?;
                // Its own connection: the target's stays on its own turn.
                members.push((t, Target::connect(n, &targets[t].addr).await?));
            }
            Some((format!("together({names})"), members, Report::default()))
        }
        None => None,
    };

    // One warm-up pass, not counted.
    let mut body = Vec::new();
    for (t, reqs) in targets.iter_mut().zip(&requests) {
        for req in reqs {
            send(t, req, &mut body).await;
        }
    }
    for t in &mut targets {
        t.report = Report::default();
    }
    let started = Instant::now();
    let queries = (0..rounds).flat_map(|_| 0..bodies.len());
    let slots = targets.len() + usize::from(together.is_some());
    // A fresh order for every query: a target's latency depends on what ran just before it
    // (a second Miroir after a first one finds the kernel's paths warm, 2-4 % on the
    // benchmark's machine), so none may always follow the same one.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut order: Vec<usize> = (0..slots).collect();
    for q in queries {
        for k in (1..slots).rev() {
            order.swap(k, rng.below(k + 1));
        }
        for &i in &order {
            if i == targets.len() {
                if let Some((_, members, report)) = together.as_mut() {
                    send_together(members, &requests, q, report).await;
                }
                continue;
            }
            let micros = send(&mut targets[i], &requests[i][q], &mut body).await;
            targets[i].per_query.push(micros.unwrap_or(u32::MAX));
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} queries x {rounds} round(s), one at a time, targets in a shuffled order",
        bodies.len()
    );
    for t in &mut targets {
        t.report.elapsed = elapsed;
        t.report.latencies.sort_unstable();
        println!("{}", t.report.line(&t.name));
    }
    if let Some((name, _, mut report)) = together {
        report.elapsed = elapsed;
        report.latencies.sort_unstable();
        println!("{}", report.line(&name));
    }
    if let Some(file) = args.get("per-query") {
        write_per_query(file, &targets, bodies.len())?;
    }
    if let Some(names) = args.get("max-of") {
        let picked: Vec<&Target> = names
            .split(',')
            .map(|n| {
                targets
                    .iter()
                    .find(|t| t.name == n)
                    .ok_or_else(|| format!("--max-of names unknown target `{n}`"))
            })
            .collect::<Result<_, _>>()?;
        let count = picked.iter().map(|t| t.per_query.len()).min().unwrap_or(0);
        let mut report = Report {
            elapsed,
            ..Report::default()
        };
        for q in 0..count {
            let slowest = picked.iter().map(|t| t.per_query[q]).max().unwrap_or(0);
            if slowest != u32::MAX {
                report.requests += 1;
                report.latencies.push(slowest);
            }
        }
        report.latencies.sort_unstable();
        println!("{}", report.line("max-of"));
    }
    Ok(())
}

/// `--per-query FILE`: one line per query sent (query number, then every target's
/// microseconds, 0 for an error), headed by the targets' names, to see which queries carry
/// a target's extra time.
fn write_per_query(file: &str, targets: &[Target], queries: usize) -> Result<(), String> {
    use std::fmt::Write as _;
    let mut out = String::from("query");
    for t in targets {
        let _ = write!(out, "\t{}", t.name);
    }
    out.push('\n');
    let count = targets.iter().map(|t| t.per_query.len()).min().unwrap_or(0);
    for q in 0..count {
        let _ = write!(out, "{}", q % queries.max(1));
        for t in targets {
            let micros = t.per_query[q];
            let _ = write!(out, "\t{}", if micros == u32::MAX { 0 } else { micros });
        }
        out.push('\n');
    }
    std::fs::write(file, out).map_err(|e| format!("{file}: {e}"))
}

/// Query `q` sent to every member at once; the time until the last answer is `report`'s.
async fn send_together(
    members: &mut [(usize, Target)],
    requests: &[Vec<Request>],
    q: usize,
    report: &mut Report,
) {
    let begin = Instant::now();
    let sends = members.iter_mut().map(|(i, t)| {
        let req = &requests[*i][q];
        async move { send(t, req, &mut Vec::new()).await }
    });
    let answers = futures::future::join_all(sends).await;
    if answers.iter().all(Option::is_some) {
        report.requests += 1;
        report
            .latencies
            .push(begin.elapsed().as_micros().min(u32::MAX as u128 - 1) as u32);
    } else {
        report.errors += 1;
    }
}

/// One request on the target's connection (reconnecting after an error); its latency in
/// microseconds when it succeeded.
async fn send(t: &mut Target, req: &Request, body: &mut Vec<u8>) -> Option<u32> {
    let conn = match t.conn.as_mut() {
        Some(c) => c,
        None => {
            t.conn = Conn::connect(&t.addr).await.ok();
            t.conn.as_mut()?
        }
    };
    let begin = Instant::now();
    match conn.send(req, body).await {
        Ok(status) if status < 400 => {
            let micros = begin.elapsed().as_micros().min(u32::MAX as u128 - 1) as u32;
            t.report.requests += 1;
            t.report.latencies.push(micros);
            Some(micros)
        }
        Ok(_) => {
            t.report.errors += 1;
            None
        }
        Err(_) => {
            t.report.errors += 1;
            t.conn = None;
            None
        }
    }
}
