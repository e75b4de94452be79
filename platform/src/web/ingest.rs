//! `POST /v1/events`: a signed gzip batch from a registered appliance, answered 200
//! only once it is committed.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::state::{Shared, now_ms};
use crate::ingest::{Refused, parse, unpack, verify};
use crate::store::events::{Batch, Stored, ingest};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn refused(app: &Shared, r: &Refused, appliance: &str) -> Response {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST);
    app.metrics
        .batches
        .with_label_values(&[status.as_str()])
        .inc();
    tracing::warn!(appliance, status = status.as_u16(), reason = %r, "batch refused");
    (status, format!("{r}\n")).into_response()
}

/// The body, up to `cap` bytes; past it the rest is read and dropped (up to 16 × `cap`)
/// so that the sender gets its 413 instead of a broken connection, and splits the batch.
async fn read_capped(body: Body, cap: usize) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Refused::Malformed(format!("reading the body: {e}")))?;
        seen += chunk.len();
        if seen <= cap {
            out.extend_from_slice(&chunk);
        } else if seen > cap.saturating_mul(16) {
            break;
        }
    }
    if seen > cap {
        return Err(Refused::TooLarge(format!(
            "the body is over {cap} bytes; send smaller batches ([report] batch_events)"
        )));
    }
    Ok(out)
}

/// The handler.
pub(super) async fn events(State(app): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let appliance = header(&headers, "x-fanzha-appliance")
        .unwrap_or("")
        .to_string();
    let Some(secret) = app.config.secret(&appliance) else {
        let r = Refused::Unauthorized(format!(
            "appliance {appliance:?} is not registered here; add it to [[appliances]] with its secret_file"
        ));
        return refused(&app, &r, &appliance);
    };
    let body = match read_capped(body, app.config.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return refused(&app, &r, &appliance),
    };
    if let Err(r) = verify(secret, &body, header(&headers, "x-fanzha-signature")) {
        return refused(&app, &r, &appliance);
    }
    let gzip = header(&headers, "content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let events =
        match unpack(&body, gzip, app.config.max_batch_bytes).and_then(|j| parse(&j, &appliance)) {
            Ok(e) => e,
            Err(r) => return refused(&app, &r, &appliance),
        };
    let key = header(&headers, "idempotency-key").map(|k| k.chars().take(128).collect::<String>());
    let spool = header(&headers, "x-fanzha-spool-bytes").and_then(|v| v.parse().ok());
    let offset = app.config.offset_minutes;
    let name = appliance.clone();
    let n = events.len();
    let stored = app
        .db(true, move |db| {
            ingest(
                db,
                &Batch {
                    appliance: &name,
                    key: key.as_deref(),
                    events: &events,
                    received_ms: now_ms(),
                    spool_bytes: spool,
                    offset_minutes: offset,
                },
            )
        })
        .await;
    match stored {
        Ok(s) => {
            let Stored {
                stored,
                duplicates,
                replayed,
            } = s;
            let m = &app.metrics;
            m.batches.with_label_values(&["200"]).inc();
            m.events
                .with_label_values(&[&appliance, "stored"])
                .inc_by(stored);
            m.events
                .with_label_values(&[&appliance, "duplicate"])
                .inc_by(if replayed { n as u64 } else { duplicates });
            let body = serde_json::json!({"stored": stored, "duplicates": duplicates, "replayed": replayed});
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            // Not committed: 503, and the appliance keeps the batch and retries.
            app.metrics.batches.with_label_values(&["503"]).inc();
            tracing::error!(appliance, error = ?e, "batch not stored");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the batch was not stored; retry\n",
            )
                .into_response()
        }
    }
}
