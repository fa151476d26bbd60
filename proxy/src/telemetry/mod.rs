//! What Miroir tells its operators: Prometheus metrics and log lines. Everything else reports
//! here; this folder imports nothing of Miroir's.

pub mod logging;
pub mod metrics;

/// The logger format a configuration asks for.
pub fn log_format(config: &miroir_conf::Config) -> logging::Format {
    match config.log.format {
        miroir_conf::LogFormat::Json => logging::Format::Json,
        miroir_conf::LogFormat::Text => logging::Format::Text,
    }
}
