//! Fault injection: latency, error answers, hangs and failing tasks, switched on by a test
//! in-process (`SimNode::faults`) or over HTTP (`/_sim/faults`, a path Meilisearch never uses).
//! Random choices come from a seeded generator so a test run is reproducible.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

/// Delay added before answering, drawn uniformly from `min..=max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
    /// Only requests whose path starts with this prefix are delayed.
    pub path_prefix: Option<String>,
}

/// Answer a fraction of requests with a Meilisearch-shaped 5xx instead of handling them.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorRate {
    /// In `0.0..=1.0`.
    pub rate: f64,
    /// 500 or 503.
    pub status: u16,
    pub path_prefix: Option<String>,
}

/// Requests taken whole and then left unanswered: the connection is closed where the answer
/// would be, as when a node dies or a middlebox drops the connection after the request went
/// out. The client cannot tell whether the request was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// Only requests with this method (all when `None`)…
    pub method: Option<String>,
    /// …whose path starts with this prefix.
    pub path_prefix: String,
    /// Whether the request is handled (its task enqueued) before the connection is closed.
    pub apply: bool,
    /// How many requests are cut before the fault clears itself.
    pub times: u32,
}

/// The error the next processed task fails with.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFailure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Default)]
struct State {
    latency: Option<Latency>,
    errors: Option<ErrorRate>,
    /// `Some(prefix)`: requests under the prefix (`""` = all) are accepted and never answered.
    hang: Option<String>,
    cut: Option<Cut>,
    fail_next_task: Option<TaskFailure>,
    rng: SplitMix64,
}

/// What the server does with one request, decided up front.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub delay: Option<Duration>,
    pub error_status: Option<u16>,
    pub hang: bool,
}

/// The fault switches of one node. All methods are cheap and callable from any thread.
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        let state = State {
            rng: SplitMix64(seed),
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn set_latency(&self, latency: Latency) {
        self.with(|s| s.latency = Some(latency));
    }

    /// Shorthand for a fixed delay on every route.
    pub fn set_fixed_latency(&self, delay: Duration) {
        self.set_latency(Latency {
            min: delay,
            max: delay,
            path_prefix: None,
        });
    }

    pub fn set_error_rate(&self, errors: ErrorRate) {
        self.with(|s| s.errors = Some(errors));
    }

    /// Requests whose path starts with `path_prefix` (all when `None`) are never answered.
    pub fn set_hang(&self, path_prefix: Option<String>) {
        self.with(|s| s.hang = Some(path_prefix.unwrap_or_default()));
    }

    pub fn set_cut(&self, cut: Cut) {
        self.with(|s| s.cut = (cut.times > 0).then_some(cut));
    }

    /// `Some(apply)` when this request is to be cut (see [`Cut`]); counts it.
    pub(crate) fn take_cut(&self, method: &str, path: &str) -> Option<bool> {
        self.with(|s| {
            let cut = s.cut.as_mut()?;
            let hit = cut.method.as_deref().is_none_or(|m| m == method)
                && path.starts_with(&cut.path_prefix);
            if !hit {
                return None;
            }
            let apply = cut.apply;
            cut.times -= 1;
            if cut.times == 0 {
                s.cut = None;
            }
            Some(apply)
        })
    }

    pub fn fail_next_task(&self, code: impl Into<String>, message: impl Into<String>) {
        let failure = TaskFailure {
            code: code.into(),
            message: message.into(),
        };
        self.with(|s| s.fail_next_task = Some(failure));
    }

    /// Removes every fault; the random sequence continues where it was.
    pub fn clear(&self) {
        self.with(|s| {
            s.latency = None;
            s.errors = None;
            s.hang = None;
            s.cut = None;
            s.fail_next_task = None;
        });
    }

    pub(crate) fn plan(&self, path: &str) -> Plan {
        self.with(|s| {
            let applies =
                |prefix: &Option<String>| prefix.as_deref().is_none_or(|p| path.starts_with(p));
            let hang = s.hang.as_deref().is_some_and(|p| path.starts_with(p));
            let delay = match &s.latency {
                Some(l) if applies(&l.path_prefix) => {
                    let span = l.max.saturating_sub(l.min).as_micros() as u64;
                    let extra = if span == 0 {
                        0
                    } else {
                        s.rng.next() % (span + 1)
                    };
                    Some(l.min + Duration::from_micros(extra))
                }
                _ => None,
            };
            let error_status = match &s.errors {
                Some(e) if applies(&e.path_prefix) && s.rng.unit() < e.rate => Some(e.status),
                _ => None,
            };
            Plan {
                delay,
                error_status,
                hang,
            }
        })
    }

    pub(crate) fn take_task_failure(&self) -> Option<TaskFailure> {
        self.with(|s| s.fail_next_task.take())
    }

    /// The current switches as the JSON `/_sim/faults` reads and writes.
    pub fn to_json(&self) -> Value {
        self.with(|s| {
            json!({
                "latency": s.latency.as_ref().map(|l| json!({
                    "minMs": l.min.as_millis() as u64,
                    "maxMs": l.max.as_millis() as u64,
                    "pathPrefix": l.path_prefix,
                })),
                "errors": s.errors.as_ref().map(|e| json!({
                    "rate": e.rate, "status": e.status, "pathPrefix": e.path_prefix,
                })),
                "hang": s.hang.as_ref().map(|p| json!({ "pathPrefix": p })),
                "cut": s.cut.as_ref().map(|c| json!({
                    "method": c.method, "pathPrefix": c.path_prefix, "apply": c.apply,
                    "times": c.times,
                })),
                "failNextTask": s.fail_next_task.as_ref().map(|f| json!({
                    "code": f.code, "message": f.message,
                })),
            })
        })
    }

    /// Applies a `/_sim/faults` body: each present key sets (or with `null`, clears) one fault.
    pub fn apply_json(&self, body: &Value) -> Result<(), String> {
        let obj = body.as_object().ok_or("expected a JSON object")?;
        for (key, value) in obj {
            match key.as_str() {
                "latency" => match value {
                    Value::Null => self.with(|s| s.latency = None),
                    v => {
                        let min = ms_field(v, "minMs")?.unwrap_or(0);
                        let max = ms_field(v, "maxMs")?.unwrap_or(min).max(min);
                        self.set_latency(Latency {
                            min: Duration::from_millis(min),
                            max: Duration::from_millis(max),
                            path_prefix: prefix_field(v),
                        });
                    }
                },
                "errors" => match value {
                    Value::Null => self.with(|s| s.errors = None),
                    v => {
                        let rate = v
                            .get("rate")
                            .and_then(Value::as_f64)
                            .ok_or("errors.rate must be a number")?;
                        let status = v.get("status").and_then(Value::as_u64).unwrap_or(500);
                        if !((0.0..=1.0).contains(&rate) && (500..600).contains(&status)) {
                            return Err(
                                "errors.rate must be in 0..=1 and errors.status a 5xx".into()
                            );
                        }
                        self.set_error_rate(ErrorRate {
                            rate,
                            status: status as u16,
                            path_prefix: prefix_field(v),
                        });
                    }
                },
                "hang" => match value {
                    Value::Null | Value::Bool(false) => self.with(|s| s.hang = None),
                    v => self.set_hang(prefix_field(v)),
                },
                "cut" => match value {
                    Value::Null => self.with(|s| s.cut = None),
                    v => self.set_cut(Cut {
                        method: v.get("method").and_then(Value::as_str).map(str::to_owned),
                        path_prefix: prefix_field(v).unwrap_or_default(),
                        apply: v.get("apply").and_then(Value::as_bool).unwrap_or(true),
                        times: v.get("times").and_then(Value::as_u64).unwrap_or(1) as u32,
                    }),
                },
                "failNextTask" => match value {
                    Value::Null => self.with(|s| s.fail_next_task = None),
                    v => {
                        let code = v.get("code").and_then(Value::as_str).unwrap_or("internal");
                        let message = v
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("Simulated task failure.");
                        self.fail_next_task(code, message);
                    }
                },
                other => return Err(format!("unknown fault `{other}`")),
            }
        }
        Ok(())
    }
}

fn ms_field(v: &Value, key: &str) -> Result<Option<u64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("latency.{key} must be an integer")),
    }
}

fn prefix_field(v: &Value) -> Option<String> {
    v.get("pathPrefix")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A tiny deterministic generator (SplitMix64); statistical quality is plenty for fault rates.
#[derive(Debug, Default)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Deterministic bytes derived from a seed, for ids that must differ between seeds.
pub(crate) fn seeded_bytes<const N: usize>(seed: u64, salt: u64) -> [u8; N] {
    let mut rng = SplitMix64(seed ^ salt.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_is_deterministic_for_a_seed() {
        let run = |seed| {
            let f = Faults::new(seed);
            f.set_error_rate(ErrorRate {
                rate: 0.5,
                status: 503,
                path_prefix: None,
            });
            (0..64)
                .map(|_| f.plan("/x").error_status.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|x| **x).count();
        assert!((16..=48).contains(&hits), "rate 0.5 gave {hits}/64");
    }

    #[test]
    fn latency_respects_path_prefix_and_range() {
        let f = Faults::new(1);
        f.set_latency(Latency {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
            path_prefix: Some("/indexes".into()),
        });
        assert_eq!(f.plan("/health").delay, None);
        let d = f.plan("/indexes/a/search").delay.unwrap();
        assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
    }

    #[test]
    fn json_controls_round_trip_and_clear() {
        let f = Faults::new(1);
        f.apply_json(
            &json!({"hang": {"pathPrefix": "/tasks"}, "failNextTask": {"code": "internal"}}),
        )
        .unwrap();
        assert!(f.plan("/tasks/1").hang);
        assert!(!f.plan("/health").hang);
        assert_eq!(f.to_json()["failNextTask"]["code"], "internal");
        f.clear();
        assert!(!f.plan("/tasks/1").hang);
        assert!(f.take_task_failure().is_none());
        assert!(f.apply_json(&json!({"nope": 1})).is_err());
    }

    #[test]
    fn a_cut_hits_its_method_and_prefix_the_set_number_of_times() {
        let f = Faults::new(1);
        f.apply_json(&json!({"cut": {"method": "POST", "pathPrefix": "/indexes/m", "times": 2}}))
            .unwrap();
        assert_eq!(f.take_cut("GET", "/indexes/m/documents"), None);
        assert_eq!(f.take_cut("POST", "/keys"), None);
        assert_eq!(f.take_cut("POST", "/indexes/m/documents"), Some(true));
        assert_eq!(f.to_json()["cut"]["times"], 1);
        assert_eq!(f.take_cut("POST", "/indexes/m/documents/edit"), Some(true));
        assert_eq!(f.take_cut("POST", "/indexes/m/documents"), None);
    }
}
