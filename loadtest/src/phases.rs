//! `phases`: where a search's time goes between the load generator, a proxy and the nodes,
//! read from a kernel trace of their socket system calls (`bench/real_nodes.sh phases`
//! records it with ftrace's `syscalls` events, `sendto`, `recvfrom` and `io_uring_enter`).
//!
//! One search through a proxy, as the trace shows it:
//! `in` the client's send to the proxy's first read (a thread wakeup); `pre` the proxy's
//! work before its node requests leave; `submit` the system call that sends them (loopback
//! delivers and wakes the nodes inside it); `wake` the last node's send to the proxy's read
//! of it (a wakeup); `post` the proxy's work from that read to its answer; `out` the answer
//! to the client's read (a wakeup). Asked directly, a node costs a client `in` and `out`
//! only: the difference is what the hop adds.

use std::collections::BTreeMap;

use crate::Args;

/// One system call event of the trace.
#[derive(Debug, Clone, PartialEq)]
struct Event<'a> {
    comm: &'a str,
    /// Microseconds.
    at: f64,
    call: &'a str,
    /// Entry (`true`) or return.
    enter: bool,
}

/// A line of ftrace's text output: `comm-tid [cpu] flags seconds: sys_call(args)` for an
/// entry, `... seconds: sys_call -> ret` for a return. Comm may hold spaces and dashes.
fn event(line: &str) -> Option<Event<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let open = line.find(" [")?;
    let task = line[..open].trim_start();
    let comm = &task[..task.rfind('-')?];
    let rest = &line[open..];
    let colon = rest.find(": ")?;
    let seconds: f64 = rest[..colon].split_whitespace().last()?.parse().ok()?;
    let what = &rest[colon + 2..];
    let call_end = what.find(['(', ' '])?;
    let call = what[..call_end].strip_prefix("sys_")?;
    Some(Event {
        comm,
        at: seconds * 1e6,
        call,
        enter: what[call_end..].starts_with('('),
    })
}

/// Per-search durations, by phase name.
#[derive(Default)]
struct Phases(BTreeMap<&'static str, Vec<f64>>);

impl Phases {
    fn add(&mut self, name: &'static str, us: f64) {
        self.0.entry(name).or_default().push(us);
    }

    fn print(mut self, order: &[&'static str]) {
        for name in order {
            let Some(v) = self.0.get_mut(name) else {
                continue;
            };
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "{name:8} p50 {median:7.1} us  mean {mean:7.1} us  ({} searches)",
                v.len()
            );
        }
    }
}

/// What one search through the proxy has shown so far.
#[derive(Default)]
struct Through {
    client_sent: f64,
    proxy_read: Option<f64>,
    submit: Option<(f64, Option<f64>)>,
    node_sent: Vec<f64>,
    proxy_reads: Vec<f64>,
    answered: Option<f64>,
}

impl Through {
    fn finish(&self, client_read: f64, p: &mut Phases) {
        let (Some(first), Some((sub, Some(sub_end))), Some(answered)) =
            (self.proxy_read, self.submit, self.answered)
        else {
            return;
        };
        let Some(last) = self.node_sent.iter().copied().reduce(f64::max) else {
            return;
        };
        let Some(read) = self.proxy_reads.iter().copied().find(|r| *r > last) else {
            return;
        };
        p.add("in", first - self.client_sent);
        p.add("pre", sub - first);
        p.add("submit", sub_end - sub);
        p.add("wake", read - last);
        p.add("post", answered - read);
        p.add("out", client_read - answered);
        p.add("total", client_read - self.client_sent);
    }
}

/// The searches of a trace of client → proxy → nodes.
fn through_proxy(events: &[Event<'_>], client: &str, proxy: &str, node: &str) -> Phases {
    let mut p = Phases::default();
    let mut s: Option<Through> = None;
    for e in events {
        let is = |prefix: &str| e.comm.starts_with(prefix);
        if is(client) && e.call == "sendto" && e.enter {
            s = Some(Through {
                client_sent: e.at,
                ..Through::default()
            });
            continue;
        }
        let Some(cur) = s.as_mut() else { continue };
        if is(proxy) {
            match (e.call, e.enter) {
                ("recvfrom", true) if cur.proxy_read.is_none() => cur.proxy_read = Some(e.at),
                ("recvfrom", true) => cur.proxy_reads.push(e.at),
                // The first send after the client's request is read: the node requests.
                ("io_uring_enter" | "sendto", true)
                    if cur.proxy_read.is_some() && cur.submit.is_none() =>
                {
                    cur.submit = Some((e.at, None))
                }
                ("io_uring_enter" | "sendto", false) => {
                    if let Some((_, end @ None)) = cur.submit.as_mut() {
                        *end = Some(e.at);
                    }
                }
                ("sendto", true) if !cur.node_sent.is_empty() => cur.answered = Some(e.at),
                _ => {}
            }
        } else if is(node) && e.call == "sendto" && e.enter && cur.submit.is_some() {
            cur.node_sent.push(e.at);
        } else if is(client) && e.call == "recvfrom" && e.enter && cur.answered.is_some() {
            cur.finish(e.at, &mut p);
            s = None;
        }
    }
    p
}

/// The searches of a trace of client → node.
fn direct(events: &[Event<'_>], client: &str, node: &str) -> Phases {
    let mut p = Phases::default();
    let mut s: Option<(f64, Option<f64>, Option<f64>)> = None;
    for e in events {
        let is = |prefix: &str| e.comm.starts_with(prefix);
        match (is(client), is(node), e.call, e.enter, s.as_mut()) {
            (true, _, "sendto", true, _) => s = Some((e.at, None, None)),
            (_, true, "recvfrom", true, Some((_, read @ None, _))) => *read = Some(e.at),
            (_, true, "sendto", true, Some((_, Some(_), sent))) => *sent = Some(e.at),
            (true, _, "recvfrom", true, Some((from, Some(read), Some(sent)))) => {
                p.add("in", *read - *from);
                p.add("out", e.at - *sent);
                p.add("total", e.at - *from);
                s = None;
            }
            _ => {}
        }
    }
    p
}

/// `phases --trace FILE [--client PREFIX] [--proxy PREFIX] [--node PREFIX]`: without
/// `--proxy`, the client asked a node directly.
pub fn phases(args: Args) -> Result<(), String> {
    let path = args.get("trace").ok_or("--trace is required")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let events: Vec<Event<'_>> = text.lines().filter_map(event).collect();
    let client = args.get("client").unwrap_or("miroir-loadtest");
    let node = args.get("node").unwrap_or("actix-rt");
    match args.get("proxy") {
        Some(proxy) => through_proxy(&events, client, proxy, node)
            .print(&["in", "pre", "submit", "wake", "post", "out", "total"]),
        None => direct(&events, client, node).print(&["in", "out", "total"]),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(lines: &[(&str, f64, &str)]) -> String {
        lines
            .iter()
            .map(|(task, s, what)| format!("   {task}    [001] .....  {s:.6}: {what}\n"))
            .collect()
    }

    #[test]
    fn a_line_gives_its_task_time_and_call() {
        let e = event(
            " actix-rt|system-6377    [001] .....  8219.988180: sys_sendto(fd: 0x1f, len: 0x38ed)",
        )
        .expect("an event");
        assert_eq!(e.comm, "actix-rt|system");
        assert_eq!(e.call, "sendto");
        assert!(e.enter);
        assert!((e.at - 8_219_988_180.0).abs() < 0.5);
        let r =
            event("       miroir-w0-6428    [000] .N...  8219.985611: sys_io_uring_enter -> 0x2")
                .expect("a return");
        assert_eq!(
            (r.comm, r.call, r.enter),
            ("miroir-w0", "io_uring_enter", false)
        );
        assert_eq!(event("# tracer: nop"), None);
    }

    #[test]
    fn a_search_through_a_proxy_splits_into_its_phases() {
        let text = trace(&[
            ("miroir-loadtest-1", 1.000_000, "sys_sendto(fd: 9)"),
            ("miroir-w0-2", 1.000_010, "sys_recvfrom(fd: 3)"),
            ("miroir-w0-2", 1.000_050, "sys_io_uring_enter(fd: 5)"),
            ("miroir-w0-2", 1.000_080, "sys_io_uring_enter -> 0x2"),
            ("actix-rt|system-3", 1.001_000, "sys_sendto(fd: 4)"),
            ("miroir-w0-2", 1.001_030, "sys_recvfrom(fd: 6)"),
            ("actix-rt|system-4", 1.001_500, "sys_sendto(fd: 4)"),
            ("miroir-w0-2", 1.001_560, "sys_recvfrom(fd: 7)"),
            ("miroir-w0-2", 1.001_620, "sys_sendto(fd: 3)"),
            ("miroir-loadtest-1", 1.001_700, "sys_recvfrom(fd: 9)"),
        ]);
        let events: Vec<Event<'_>> = text.lines().filter_map(event).collect();
        let p = through_proxy(&events, "miroir-loadtest", "miroir-w", "actix-rt");
        let got = |k: &str| p.0[k][0].round();
        assert_eq!(
            ["in", "pre", "submit", "wake", "post", "out", "total"].map(got),
            [10.0, 40.0, 30.0, 60.0, 60.0, 80.0, 1700.0]
        );
    }

    #[test]
    fn a_direct_search_has_two_wakeups() {
        let text = trace(&[
            ("miroir-loadtest-1", 2.000_000, "sys_sendto(fd: 9)"),
            ("actix-rt|system-3", 2.000_040, "sys_recvfrom(fd: 4)"),
            ("actix-rt|system-3", 2.001_400, "sys_sendto(fd: 4)"),
            ("miroir-loadtest-1", 2.001_490, "sys_recvfrom(fd: 9)"),
        ]);
        let events: Vec<Event<'_>> = text.lines().filter_map(event).collect();
        let p = direct(&events, "miroir-loadtest", "actix-rt");
        assert_eq!(p.0["in"][0].round(), 40.0);
        assert_eq!(p.0["out"][0].round(), 90.0);
    }
}
