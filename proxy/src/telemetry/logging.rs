//! The process logger: human-readable lines by default, one JSON object per line when
//! configured. Pingora logs through the `log` crate too, so its lines share the format.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    json: AtomicBool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger once; later calls only change the format and level, so a config
/// reload can switch them.
pub fn init(format: Format, level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| Logger {
        json: AtomicBool::new(false),
    });
    logger.json.store(format == Format::Json, Ordering::Relaxed);
    // Fails only when another logger is installed (tests); ours then stays unused.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Pingora's internals are chatty at info; keep them at warn and above.
        if record.level() > Level::Warn && !record.target().starts_with("miroir") {
            return;
        }
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = if self.json.load(Ordering::Relaxed) {
            let obj = serde_json::json!({
                "timestamp": now,
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            obj.to_string()
        } else {
            format!(
                "{now} {:5} {} {}",
                record.level(),
                record.target(),
                record.args()
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Parses the config's level name; unknown names fall back to `info` (config validation
/// rejects them before this point).
pub fn level_from_str(s: &str) -> LevelFilter {
    s.parse().unwrap_or(LevelFilter::Info)
}
