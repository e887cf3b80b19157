//! The JSON of rate recommendations and sequences, for the admin API.
//!
//! [`recommendations_json`] and [`sequences_json`] build the documents; with
//! the `admin` feature, [`insight_routes`] serves them as an axum router to
//! mount under the admin API:
//!
//! - `GET /recommendations`: every endpoint with at least 50 sessions in the
//!   last 24 hours, as [`Recommendation`](crate::Recommendation)s.
//! - `GET /sequences?top=N`: the `N` (default 20) sequences with the best
//!   precedence score and the `N` seen most often, and every pair.

use serde_json::{Value, json};

use crate::rates::{MIN_SESSIONS, RateRecommender, WINDOW};
use crate::sequence::SequenceTracker;

/// The recommendations of `recommender` as a JSON document.
pub fn recommendations_json(recommender: &RateRecommender) -> Value {
    json!({
        "window_secs": WINDOW.as_secs(),
        "min_sessions": MIN_SESSIONS,
        "recommendations": recommender.recommendations(),
    })
}

/// The `top` best-scored and most frequent sequences of `tracker`, and all
/// its pairs, as a JSON document.
pub fn sequences_json(tracker: &SequenceTracker, top: usize) -> Value {
    let report = tracker.report();
    json!({
        "top_by_score": report.top_by_score(top),
        "top_by_volume": report.top_by_volume(top),
        "pairs": report.pairs,
    })
}

/// An axum router serving `GET /recommendations` (with a recommender) and
/// `GET /sequences` (with a tracker).
#[cfg(feature = "admin")]
pub fn insight_routes(
    recommender: Option<RateRecommender>,
    tracker: Option<SequenceTracker>,
) -> axum::Router {
    use axum::routing::get;
    use http::{Uri, header};

    fn json_response(value: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
        (
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
    }

    let mut router = axum::Router::new();
    if let Some(recommender) = recommender {
        router = router.route(
            "/recommendations",
            get(move || {
                let response = json_response(&recommendations_json(&recommender));
                async move { response }
            }),
        );
    }
    if let Some(tracker) = tracker {
        router = router.route(
            "/sequences",
            get(move |uri: Uri| {
                let top = top_param(uri.query()).unwrap_or(20);
                let response = json_response(&sequences_json(&tracker, top));
                async move { response }
            }),
        );
    }
    router
}

/// The `top` query parameter, at most 1,000.
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
fn top_param(query: Option<&str>) -> Option<usize> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("top="))
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n.min(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_parameter_is_read_and_capped() {
        assert_eq!(top_param(Some("a=1&top=5")), Some(5));
        assert_eq!(top_param(Some("top=99999")), Some(1_000));
        assert_eq!(top_param(Some("top=x")), None);
        assert_eq!(top_param(None), None);
    }

    #[test]
    fn empty_collectors_give_empty_documents() {
        let doc = recommendations_json(&RateRecommender::new());
        assert_eq!(doc["recommendations"], json!([]));
        assert_eq!(doc["min_sessions"], 50);
        let doc = sequences_json(&SequenceTracker::new(), 3);
        assert_eq!(doc["pairs"], json!([]));
    }
}
