//! The build report as JSON (`kiln build --report FILE`), a format scripts and dashboards read:
//!
//! ```json
//! {"image": {"digest": "sha256:…", "config": "sha256:…", "tags": ["…"]},
//!  "steps": [{"stage": "app", "index": 3, "line": 7, "instruction": "COPY src/ ./src/",
//!             "cache": "miss", "source": null,
//!             "reason": {"kind": "file_changed", "path": "src/app.py", "old": "sha256:…",
//!                        "new": "sha256:…", "message": "file `src/app.py` changed: …"},
//!             "key": "sha256:…", "duration_ms": 41, "layer": {"digest": "sha256:…", "size": 1234}}],
//!  "summary": {"hits": 5, "misses": 2, "hit_rate": 0.714, "bytes_reused": 123, "bytes_built": 45,
//!              "duration_ms": 840}}
//! ```

use serde_json::{Value, json};

use super::{BuildReport, StepCache, StepReport};

/// The report as the JSON value `--report` writes.
pub fn to_json(report: &BuildReport) -> Value {
    json!({
        "image": {
            "digest": report.digest.to_string(),
            "config": report.config_digest.to_string(),
            "tags": report.tags.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "steps": report.steps.iter().map(step).collect::<Vec<_>>(),
        "summary": {
            "hits": report.cache.hits,
            "misses": report.cache.misses,
            "hit_rate": report.cache.hit_rate(),
            "bytes_reused": report.cache.bytes_reused,
            "bytes_built": report.cache.bytes_built,
            "duration_ms": report.duration.as_millis() as u64,
        },
    })
}

fn step(s: &StepReport) -> Value {
    let (cache, source, reason) = match &s.cache {
        StepCache::Hit { source } => ("hit", json!(source), Value::Null),
        StepCache::Miss { reason } => {
            let mut r = serde_json::to_value(reason).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut r {
                map.insert("message".into(), json!(reason.to_string()));
            }
            ("miss", Value::Null, r)
        }
        StepCache::NotApplicable => ("n/a", Value::Null, Value::Null),
    };
    json!({
        "stage": s.stage,
        "index": s.number,
        "line": s.line,
        "instruction": s.instruction,
        "cache": cache,
        "source": source,
        "reason": reason,
        "key": s.key.as_ref().map(ToString::to_string),
        "duration_ms": s.duration.as_millis() as u64,
        "layer": s.layer.as_ref().map(|l| json!({"digest": l.digest.to_string(), "size": l.size})),
    })
}
