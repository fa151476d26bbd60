//! Small JSON records in the data directory, replaced atomically.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// Writes `value` to a new file beside `path`, syncs it and renames it over: a crash leaves
/// the old record or the new one, whole. Blocking: call it off the async workers.
pub fn save_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}
